"""What a bare EXPUNGE removed, read from its responses: the check of
``ImapConnection.expunge_uids`` on a server without UIDPLUS. Pure functions.

Each ``* n EXPUNGE`` names a sequence number in the folder as it stands after the ones
before it (RFC 3501 §7.4.1): ``* 3 EXPUNGE`` twice removes the third message and then the
one that was fourth. So the numbers are played in order against the UIDs by sequence
number. A session with QRESYNC enabled hears ``* VANISHED uids`` instead (RFC 7162
§3.2.10), which names the UIDs themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec


class ExpungeOutcome(msgspec.Struct, frozen=True):
    """What went, against what was meant to: ``ours`` that did not go, others that did, and
    responses past the known numbers (mail that arrived after the count was taken)."""

    removed: tuple[int, ...]
    kept: tuple[int, ...]
    unexpected: tuple[int, ...]
    unknown_numbers: int

    @property
    def exact(self) -> bool:
        return not self.kept and not self.unexpected and not self.unknown_numbers


def uids_by_number(fetched: Mapping[int, int]) -> list[int]:
    """Sequence number -> UID (``FETCH 1:* (UID)``) as a list by number - 1. A gap means
    the answer is not the whole folder: ValueError."""
    uids = [fetched[number] for number in sorted(fetched)]
    if sorted(fetched) != list(range(1, len(fetched) + 1)):
        raise ValueError("FETCH 1:* left sequence numbers out")
    return uids


def expunge_outcome(
    numbered: list[int], expunged: Iterable[int], ours: Iterable[int], vanished: Iterable[int] = ()
) -> ExpungeOutcome:
    """Play the EXPUNGE responses' numbers in order against ``numbered`` (UIDs by
    sequence number - 1), add the VANISHED UIDs, and compare what went with ``ours``."""
    removed = list(vanished)
    named = set(removed)
    remaining = [uid for uid in numbered if uid not in named]
    unknown = 0
    for number in expunged:
        if 1 <= number <= len(remaining):
            removed.append(remaining.pop(number - 1))
        else:
            unknown += 1
    meant = set(ours)
    gone = set(removed)
    return ExpungeOutcome(
        removed=tuple(sorted(gone)),
        kept=tuple(sorted(meant - gone)),
        unexpected=tuple(sorted(gone - meant)),
        unknown_numbers=unknown,
    )
