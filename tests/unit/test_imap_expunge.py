"""What a bare EXPUNGE removed, from its responses' sequence numbers."""

from __future__ import annotations

import pytest

from bridge.imap.expunge import ExpungeOutcome, expunge_outcome, uids_by_number


@pytest.mark.parametrize(
    ("numbered", "expunged", "ours", "outcome", "vanished"),
    [
        # Exactly ours: numbers fall as each message goes (3 then 3 again is UIDs 7, 9).
        ([4, 5, 7, 9], [3, 3], [7, 9], ExpungeOutcome((7, 9), (), (), 0), []),
        ([4, 5, 7, 9], [1], [4], ExpungeOutcome((4,), (), (), 0), []),
        # Another client's message marked \Deleted in the window went too.
        ([4, 5, 7, 9], [1, 1], [4], ExpungeOutcome((4, 5), (), (5,), 0), []),
        # One of ours stayed (its mark was taken off meanwhile).
        ([4, 5, 7, 9], [3], [7, 9], ExpungeOutcome((7,), (9,), (), 0), []),
        # A number past the folder as counted: mail that arrived after the FETCH.
        ([4, 5], [2, 2], [5], ExpungeOutcome((5,), (), (), 1), []),
        ([4, 5], [], [5], ExpungeOutcome((), (5,), (), 0), []),
        # With QRESYNC enabled the server names the UIDs (VANISHED) instead.
        ([4, 5, 7, 9], [], [7, 9], ExpungeOutcome((7, 9), (), (), 0), [7, 9]),
        ([4, 5, 7, 9], [], [7], ExpungeOutcome((5, 7), (), (5,), 0), [5, 7]),
    ],
)
def test_expunge_outcome(
    numbered: list[int],
    expunged: list[int],
    ours: list[int],
    outcome: ExpungeOutcome,
    vanished: list[int],
) -> None:
    assert expunge_outcome(numbered, expunged, ours, vanished) == outcome
    assert outcome.exact == (outcome == ExpungeOutcome(tuple(sorted(ours)), (), (), 0))


def test_uids_by_number_needs_every_number() -> None:
    assert uids_by_number({2: 8, 1: 3, 3: 12}) == [3, 8, 12]
    assert uids_by_number({}) == []
    with pytest.raises(ValueError):
        uids_by_number({1: 3, 3: 12})
