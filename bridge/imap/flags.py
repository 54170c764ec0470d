"""IMAP flags <-> JMAP keywords (RFC 8621 §4.1.1).

IMAP system flags map to the four ``$`` keywords JMAP defines for them; other IMAP keywords
are case-insensitive, JMAP keywords lower-case, so they are lower-cased on the way to JMAP.
``\\Deleted`` is no keyword at all (it is IMAP's expunge-pending mark), and ``\\Recent`` is
session state, so both are dropped; ``\\Deleted`` is reported separately so a caller may
hide such messages.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.imap.quoting import atom_keyword

SYSTEM_TO_KEYWORD = {
    "\\seen": "$seen",
    "\\flagged": "$flagged",
    "\\answered": "$answered",
    "\\draft": "$draft",
}
KEYWORD_TO_SYSTEM = {
    "$seen": "\\Seen",
    "$flagged": "\\Flagged",
    "$answered": "\\Answered",
    "$draft": "\\Draft",
}
DELETED = "\\deleted"
RECENT = "\\recent"


def flag_to_keyword(flag: str) -> str | None:
    """The JMAP keyword for one IMAP flag, or None for flags that are not keywords."""
    lowered = flag.lower()
    if lowered in SYSTEM_TO_KEYWORD:
        return SYSTEM_TO_KEYWORD[lowered]
    if lowered.startswith("\\"):
        return None  # \Deleted, \Recent and unknown system flags
    return lowered


def flags_to_keywords(flags: Iterable[str]) -> frozenset[str]:
    return frozenset(k for flag in flags if (k := flag_to_keyword(flag)) is not None)


def is_deleted(flags: Iterable[str]) -> bool:
    return any(flag.lower() == DELETED for flag in flags)


def keyword_to_flag(keyword: str) -> str:
    """The IMAP flag to STORE for a JMAP keyword; ValueError if IMAP cannot carry it."""
    lowered = keyword.lower()
    if lowered in KEYWORD_TO_SYSTEM:
        return KEYWORD_TO_SYSTEM[lowered]
    atom_keyword(keyword)
    return lowered


def keywords_to_flags(keywords: Iterable[str]) -> list[str]:
    return sorted({keyword_to_flag(keyword) for keyword in keywords})
