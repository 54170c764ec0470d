"""JMAP Mailbox names <-> IMAP folder names: the hierarchy delimiter inside a name.

A JMAP name is one level of the tree, and may hold any character (RFC 8621 §2). In IMAP
the namespace's hierarchy delimiter ("/" or ".") cannot appear inside one level: it would
make two. So inside a name bridge writes the delimiter as a look-alike character, and
reads the look-alike back as the delimiter:

    "/"  <->  U+2215 DIVISION SLASH     ("Q1/Q2" is the IMAP folder "Q1", U+2215, "Q2")
    "."  <->  U+2024 ONE DOT LEADER     ("v1.2" is the IMAP folder "v1", U+2024, "2")

Other IMAP clients show the look-alike, which reads as what the user typed. Every IMAP name
has a JMAP name: a look-alike in an IMAP name (put there by bridge or by anyone else)
reads as the delimiter, and an IMAP name never holds the delimiter inside one level. The
way back is unambiguous because bridge refuses a JMAP name that holds the look-alike
itself (invalidProperties): otherwise "a/b" and "a", U+2215, "b" would both become the
IMAP folder "a", U+2215, "b".
A delimiter without a look-alike here stays refused inside a name, as before.
"""

from __future__ import annotations

LOOK_ALIKES = {"/": "\u2215", ".": "\u2024"}


def stand_in(delimiter: str | None) -> str | None:
    """The character that stands for ``delimiter`` inside a name, if it has one."""
    return LOOK_ALIKES.get(delimiter or "")


def to_jmap(level: str, delimiter: str | None) -> str:
    """One level of an IMAP name as the JMAP name."""
    alike = stand_in(delimiter)
    return level.replace(alike, delimiter or "") if alike else level


def to_imap(name: str, delimiter: str | None) -> str:
    """A JMAP name as one level of an IMAP name. The caller has refused a name holding
    the stand-in (and, where there is none, the delimiter itself)."""
    alike = stand_in(delimiter)
    return name.replace(delimiter or "", alike) if alike and delimiter else name
