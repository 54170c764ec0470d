"""The header index behind Email/query's from, to, cc, bcc and subject conditions.

What the upstream matches (found on Dovecot 2.3, and checked by
tests/integration/test_query_random.py against its SEARCH): a substring of the field after
RFC 2047 encoded-words are decoded, compared by i;unicode-casemap (RFC 5051: simple
titlecase, then decomposition); for address fields, of the address list as Dovecot
re-writes it: ``"Alice Smith" <alice@ex.test>``, with the name quoted and taken from a
comment where there is none (``alice@ex.test (Alice Smith)``), and MISSING_DOMAIN after a
bare name. So ``<alice`` and ``"alice smith"`` match all three forms and ``Smith <al``
none (seen on Dovecot 2.3.19).

The cache keeps each field as the words of that text: runs of letters, digits and
combining marks, case-mapped as i;unicode-casemap maps them, separated by one space. A
query token that is one such word matches exactly the Emails where it is part of a word:
re-writing an address list changes the punctuation and spacing between words, never a
word. That answer is the cache's own, with no upstream SEARCH, for every field marked
exact. A field is not exact where bridge cannot be sure to read it as the server does:
bytes that are not UTF-8, an encoded-word that does not decode or sits in a quoted
string, comments and groups in an address list (the server may take a comment for the
name, or drop it), an address without a domain (Dovecot matches its MISSING_DOMAIN).

A token that is more than one word (punctuation or a space inside, as in ``"Smith <al"``
or a quoted phrase), and any token on a field that is not exact or not indexed yet (a
cache from before this index), only narrows: the candidates are the Emails whose words,
joined without their spaces, hold the token's letters and digits, and the upstream's
SEARCH restricted to their UIDs decides. Dropping the characters between words on both
sides keeps every substring match a match, so the narrowing never loses a message the
server would find. For address fields the words of each address as ``name address`` are
kept beside those of the field as written, so that a name taken from a comment is found
whichever order the server writes it in (only for fields not exact: in the others the
order is the server's).
"""

from __future__ import annotations

import re
import unicodedata
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.utils import getaddresses

from bridge.mail.sort_keys import unicode_casemap
from bridge.mail.threading import header_fields
from bridge.store.records import HeaderText

ADDRESS_FIELDS = ("from", "to", "cc", "bcc")
INDEXED_FIELDS = (*ADDRESS_FIELDS, "subject")
# What the cache fetches of each new message for the index (with the threading fields).
FETCHED = ("FROM", "TO", "CC", "BCC", "SUBJECT")
# The bit of HeaderText.inexact that marks each field.
INEXACT_BIT = {name: 1 << position for position, name in enumerate(INDEXED_FIELDS)}
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
# A word of ASCII text after case-mapping: letters and digits (no ASCII character is a mark).
_ASCII_WORD = re.compile(r"[A-Z0-9]+")
# A plain address, perhaps with a name (quoted, or atoms and encoded-words) before it.
_ADDR_SPEC = r"[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+"
_PLAIN_ADDRESS = re.compile(
    rf"""\s*(?:(?:"[^"\\\r\n]*"|[A-Za-z0-9 .'_=?/+-]*)\s*<{_ADDR_SPEC}>|{_ADDR_SPEC})\s*"""
)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch)[0] == "M"


def words(text: str) -> list[str]:
    """The words of ``text`` after i;unicode-casemap."""
    if text.isascii():
        return _ASCII_WORD.findall(text.upper())  # the same, eight times faster
    return words_any(text)


def words_any(text: str) -> list[str]:
    """``words`` by the rule itself, for text of any script."""
    found: list[str] = []
    current: list[str] = []
    for ch in unicode_casemap(text):
        if _is_word_char(ch):
            current.append(ch)
        elif current:
            found.append("".join(current))
            current = []
    if current:
        found.append("".join(current))
    return found


def token_word(token: str) -> str | None:
    """The one word a query token is, or None when it is several (or none)."""
    found = words(token)
    if len(found) == 1 and found[0] == unicode_casemap(token):
        return found[0]
    return None


def _decoded(value: str) -> tuple[str, bool]:
    """The value with its encoded-words decoded, and whether that went cleanly."""
    if "=?" not in value:
        return value, True
    try:
        parts = decode_header(value)
        if not value.isascii():
            return _joined(parts), False
        text = str(make_header(parts))
    except (HeaderParseError, ValueError, LookupError, UnicodeError):
        return value, False
    return text, not _ENCODED_WORD.search(text)


def _joined(parts: list[tuple[bytes | str, str | None]]) -> str:
    """Encoded-words beside raw 8-bit text. decode_header hands the raw text back as
    raw-unicode-escape, which make_header then reads as ASCII ("Иван" became "\\u0418...",
    words the server never sees): each part is decoded here. Left inexact: make_header
    spaces an encoded-word from text that touches it, which may not be the server's way,
    and the narrowing, which compares letters alone, is indifferent to spacing."""
    return "".join(
        part if isinstance(part, str)
        else part.decode(charset or "raw-unicode-escape", "replace")
        for part, charset in parts
    )  # fmt: skip


def _plain_list(text: str) -> bool:
    """Whether ``text`` is a list of plain ASCII addresses (``a@b.c``, ``Name <a@b.c>``,
    ``"Name" <a@b.c>``), each with its domain, as most are: then the address parser (a
    third of the index's cost) has nothing to say."""
    return all(_PLAIN_ADDRESS.fullmatch(piece) for piece in text.split(","))


def _field(name: str, values: list[bytes]) -> tuple[str, bool]:
    """The words of one field, and whether they are exactly what the server searches."""
    exact = True
    texts: list[str] = []
    for value in values:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text, exact = value.decode("utf-8", "replace"), False
        texts.append(text)
    found: list[str] = []
    for text in texts:
        decoded, clean = _decoded(text)
        found += words(decoded)
        exact = exact and clean
    if name in ADDRESS_FIELDS:
        for text in texts:
            if "(" in text or ":" in text or ('"' in text and "=?" in text):
                exact = False
        if exact and all(_plain_list(text) for text in texts):
            return " ".join(found), True  # every address has a domain: nothing to add
        parsed = getaddresses(texts)
        if any(address and "@" not in address for _, address in parsed):
            exact = False
        if not exact:  # the server may write the list in another order: both orders
            for display, address in parsed:
                found += words(f"{_decoded(display)[0]} {address}")
    return " ".join(found), exact


def header_text(block: bytes, fields: dict[str, list[bytes]] | None = None) -> HeaderText:
    """The index's record of a header block (the whole header, or its HEADER.FIELDS);
    ``fields``: its ``header_fields``, where the caller has them already."""
    fields = header_fields(block) if fields is None else fields
    texts: list[str] = []
    inexact = 0
    for name in INDEXED_FIELDS:
        text, exact = _field(name, fields.get(name, []))
        texts.append(text)
        if not exact:
            inexact |= INEXACT_BIT[name]
    return HeaderText(*texts, inexact=inexact)
