"""The header index behind Email/query's from, to, cc, bcc and subject conditions.

The cache keeps, per Email, each of these fields reduced to a key: decoded (RFC 2047
encoded-words, UTF-8), case-folded and decomposed, and then only its letters and digits.
A query token reduced the same way narrows the candidates to the Emails whose key holds
it; the upstream's SEARCH, restricted to those UIDs, then gives the exact answer.

Why a narrowing and not the answer: Dovecot's SEARCH FROM matches a substring of the
address list as it re-writes it (``Name <local@domain>``, quotes and comments changed,
MISSING_DOMAIN filled in) after decoding, case-folded by i;unicode-casemap; other servers
differ again. Dropping every character that is not a letter or a digit, on both sides,
keeps each substring match a substring match, whatever punctuation and spacing the server
puts between a name and its address; so the narrowing never loses a match that the server
would find, as long as its letters and digits are the ones kept here. For address fields
the key holds both the field as written and each address as ``name address``, so that a
name taken from a comment matches either way. Case folding here (NFKD, casefold) is at
least as coarse as i;unicode-casemap.

A token with no letter or digit narrows nothing: every Email is a candidate for it.
"""

from __future__ import annotations

import unicodedata
from email.header import decode_header, make_header
from email.utils import getaddresses

from bridge.mail.threading import header_fields
from bridge.store.records import HeaderText

ADDRESS_FIELDS = ("from", "to", "cc", "bcc")
INDEXED_FIELDS = (*ADDRESS_FIELDS, "subject")
# What the cache fetches of each new message for the index (and the threading fields).
FETCHED = ("FROM", "TO", "CC", "BCC", "SUBJECT")


def search_key(text: str) -> str:
    """``text`` folded to the letters and digits the index compares."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(ch for ch in folded if ch.isalnum())


def _decoded(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def _field_key(name: str, values: list[bytes]) -> str:
    texts = [value.decode("utf-8", "replace") for value in values]
    keys = [search_key(_decoded(text)) for text in texts]
    if name in ADDRESS_FIELDS:
        for display, address in getaddresses(texts):
            keys.append(search_key(f"{_decoded(display)} {address}"))
    # A space keeps two alternatives from forming a match across their boundary.
    return " ".join(key for key in keys if key)


def header_text(block: bytes) -> HeaderText:
    """The index keys of a header block (the whole header, or its HEADER.FIELDS)."""
    fields = header_fields(block)
    return HeaderText(*(_field_key(name, fields.get(name, [])) for name in INDEXED_FIELDS))
