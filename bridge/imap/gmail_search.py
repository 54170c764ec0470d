"""Email/query text conditions as Gmail's own search (``SEARCH X-GM-RAW``). Pure, no I/O.

Google's "IMAP Extensions" document: X-GM-RAW takes a query "interpreted in the same
manner as in the Gmail web interface", i.e. with Gmail's search operators (Google's "Search
operators you can use with Gmail"), and Gmail answers it from its search index. Gmail's
plain SEARCH TEXT/BODY/FROM is word-based as well, but slow on a large folder. So X-GM-RAW
is sent wherever a Gmail operator means what the JMAP condition means (RFC 8621 §4.4.1),
and plain SEARCH (``bridge.imap.search``) answers the rest:

- text -> the tokens as bare words: Gmail looks in the headers and every part, the
  superset IMAP TEXT gives too. from -> ``from:``, cc -> ``cc:``, bcc -> ``bcc:``,
  subject -> ``subject:``: each the header field JMAP names.
- to stays SEARCH TO: Gmail's ``to:`` matches Cc and Bcc recipients too.
- body (no Gmail operator for the body alone) and header stay SEARCH BODY / HEADER.
- Dates (``before:``/``after:`` are days in the account's time zone, not receivedAt's
  instant), has:attachment (Gmail's idea of an attachment is not RFC 8621 §4.1.4's),
  label:/in: and is: are not used: the cache answers those conditions exactly.

Gmail matches whole words (RFC 8621 §4.4.1 allows that). Each token or phrase that
``search.tokens`` finds is sent as a quoted phrase, ``from:"ann lee"``, so a client's
text is always words to look for and never an operator: inside quotes ``OR``, ``-``,
``label:x`` or ``{`` are plain text. Gmail's syntax has no escape inside quotes, so a ``"``
or ``\\`` in a token becomes a space, and white space (line breaks too) one space; Gmail's
index splits words at punctuation and spaces anyway.
Where that cannot give the same answer, the condition stays plain SEARCH: a token with no
letter or digit (nothing Gmail indexes) and, for the address operators, ``me``, which
Gmail reads as the account's own address.
"""

from __future__ import annotations

from bridge.imap import quoting
from bridge.imap.search import tokens

# JMAP condition -> Gmail operator ("" for bare words).
OPERATORS = {"text": "", "from": "from:", "cc": "cc:", "bcc": "bcc:", "subject": "subject:"}
_ADDRESS_OPERATORS = frozenset({"from:", "cc:", "bcc:"})
_UNQUOTABLE = str.maketrans({'"': " ", "\\": " "})


def gmail_query(name: str, value: str) -> str | None:
    """The Gmail query for one (valid) text condition, or None where plain SEARCH must
    answer it."""
    operator = OPERATORS.get(name)
    if operator is None:
        return None
    terms: list[str] = []
    for token in tokens(value):
        words = " ".join(token.translate(_UNQUOTABLE).split())
        if not any(char.isalnum() for char in words):
            return None
        if operator in _ADDRESS_OPERATORS and words.casefold() == "me":
            return None
        terms.append(f'{operator}"{words}"')
    return " ".join(terms) or None


def raw_criteria(name: str, value: str) -> bytes | None:
    """``X-GM-RAW <query>`` (the query quoted or a literal, by ``quoting``), or None."""
    query = gmail_query(name, value)
    return None if query is None else b"X-GM-RAW " + quoting.astring(query)
