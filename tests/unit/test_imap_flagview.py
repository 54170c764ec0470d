"""FolderView: sequence-number bookkeeping of a folder's unsolicited responses, on raw bytes."""

from __future__ import annotations

import random

import pytest

from bridge.imap.flagview import FolderView
from bridge.imap.wire import BytesTransport, Wire, read_untagged


def based(uids: list[int]) -> FolderView:
    view = FolderView("INBOX", 7, len(uids))
    view.rebase(uids)
    return view


def test_flags_expunges_and_new_mail_are_mapped_to_uids() -> None:
    view = based([10, 20, 30, 40])
    view.observe(
        read_untagged(
            b"* 2 FETCH (FLAGS (\\Seen))\r\n"
            b"* 1 EXPUNGE\r\n"  # 10 goes: 20 is now 1, 30 is 2, 40 is 3
            b"* 2 FETCH (FLAGS (\\Flagged $Work))\r\n"
            b"* 5 EXISTS\r\n"  # two new messages, not yet mapped
            b"* 3 EXPUNGE\r\n"  # 40
        )
    )
    assert view.based and view.exists == 4 and view.mapped == 2
    view.observe(read_untagged(b"* 3 FETCH (UID 50 FLAGS ())\r\n* 4 FETCH (UID 60 FLAGS ())\r\n"))
    changes = view.drain()
    assert changes.flags == {20: ("\\Seen",), 30: ("\\Flagged", "$Work"), 50: (), 60: ()}
    assert changes.expunged == {10, 40}
    assert changes.known_up_to == 40
    assert view.mapped == view.exists == 4 and view.known_up_to == 60
    assert view.drain().flags == {}  # drained: counts from here


def test_a_message_flagged_then_expunged_is_only_expunged() -> None:
    view = based([1, 2])
    view.observe(read_untagged(b"* 2 FETCH (FLAGS (\\Deleted))\r\n* 2 EXPUNGE\r\n"))
    changes = view.drain()
    assert changes.flags == {} and changes.expunged == {2}


def test_fetches_without_flags_or_past_the_next_number_keep_nothing() -> None:
    view = based([1, 2])
    view.observe(
        read_untagged(
            b"* 1 FETCH (RFC822.SIZE 100)\r\n"
            b"* 4 FETCH (FLAGS (\\Seen))\r\n"  # new mail the fetch of new mail will read
            b"* 4 FETCH (UID 9 FLAGS (\\Seen))\r\n"  # number 3 not seen yet: left to it too
        )
    )
    assert view.drain().flags == {} and view.mapped == 2 and not view.lost


@pytest.mark.parametrize(
    "said",
    [
        b"* 1 FETCH (UID 99 FLAGS (\\Seen))\r\n",  # a UID that is not the one at 1
        b"* 1 VANISHED 5\r\n",
        b"* 0 EXPUNGE\r\n",
    ],
)
def test_what_cannot_be_followed_loses_the_view(said: bytes) -> None:
    view = based([1, 2, 3])
    view.observe(read_untagged(said))
    assert view.lost and not view.based


def test_before_a_rebase_responses_are_only_counted() -> None:
    view = FolderView("INBOX", 7, 2)
    view.observe(read_untagged(b"* 1 FETCH (UID 1 FLAGS ())\r\n* 3 EXISTS\r\n* 1 EXPUNGE\r\n"))
    assert view.events == 3 and view.exists == 2 and not view.based
    view.rebase([2, 3])
    assert view.based and view.drain().flags == {}
    view.rebase([2])  # a count that disagrees with EXISTS is no base
    assert not view.based


def test_unsolicited_vanished_uids_are_kept_until_taken() -> None:
    """With QRESYNC the session's own expunges (a UID MOVE's answer) come as VANISHED; a
    later VANISHED (EARLIER) need not repeat them (Cyrus at times does not)."""
    view = FolderView("INBOX", 7, 3)
    view.observe(read_untagged(b"* VANISHED 5:6\r\n* VANISHED (EARLIER) 9\r\n"))
    assert view.take_vanished() == {5, 6}
    assert view.take_vanished() == set()


def test_the_wire_shows_every_reply_to_its_observer() -> None:
    seen: list[str] = []
    transport = BytesTransport(b"* 3 FETCH (FLAGS (\\Seen))\r\n* 4 EXISTS\r\nB1 OK done\r\n")
    wire = Wire(transport)
    wire.observer = lambda responses: seen.extend(r.kind for r in responses)
    wire.run(b"NOOP")
    assert seen == ["FETCH", "EXISTS"]


def _sync(view: FolderView, folder: dict[int, tuple[str, ...]]) -> tuple[dict, set[int]]:
    """What a sync does: fetch the mail past the view's last drain (the server answers with
    sequence numbers and UIDs), then drain."""
    uids = sorted(folder)
    answer = b"".join(
        b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (number, uid, " ".join(folder[uid]).encode())
        for number, uid in enumerate(uids, 1)
        if uid > view.known_up_to
    )
    view.observe(read_untagged(answer))
    changes = view.drain()
    return changes.flags, changes.expunged


def test_random_histories_match_a_model() -> None:
    """Random flag changes, expunges and arrivals, told as a server tells them: at every
    sync the view maps the folder's UIDs, and its drains name every change."""
    rng = random.Random(8621)
    for _ in range(300):
        folder: dict[int, tuple[str, ...]] = {uid: () for uid in range(1, rng.randint(0, 30))}
        next_uid = len(folder) + 1
        view = based(list(folder))
        cache = dict(folder)  # what the syncs have told
        for step in range(rng.randint(1, 40)):
            uids = sorted(folder)
            action = rng.random()
            if action < 0.4 and uids:
                uid = rng.choice(uids)
                folder[uid] = rng.choice([(), ("\\Seen",), ("\\Flagged", "$x")])
                flags = " ".join(folder[uid]).encode()
                said = b"* %d FETCH (FLAGS (%s))\r\n" % (uids.index(uid) + 1, flags)
            elif action < 0.7 and uids:
                uid = rng.choice(uids)
                del folder[uid]
                said = b"* %d EXPUNGE\r\n" % (uids.index(uid) + 1)
            else:
                folder[next_uid] = ()
                next_uid += 1
                said = b"* %d EXISTS\r\n" % len(folder)
            view.observe(read_untagged(said))
            if rng.random() < 0.3 or step == 0:
                flags_by_uid, expunged = _sync(view, folder)
                for uid in expunged:
                    cache.pop(uid, None)
                cache.update(flags_by_uid)
                assert cache == folder
                assert view.based and view.mapped == view.exists == len(folder)
