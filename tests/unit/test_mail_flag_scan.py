"""What a sync without mod-sequences does to each folder, and when flag scans fall due."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest

from bridge.imap.flagview import FolderView
from bridge.imap.wire import read_untagged
from bridge.mail.flag_scan import FlagScans, Plan, plan_folder
from bridge.store.records import FolderState, MailboxRecord

SYNCED = FolderState(uidvalidity=5, uidnext=11, messages=10, unseen=3)


def record(name: str = "Archive", **status: int) -> MailboxRecord:
    """A folder synced at SYNCED whose STATUS now differs by ``status``."""
    now = msgspec.structs.replace(SYNCED, **status)
    return MailboxRecord(id=f"m-{name}", upstream_key=name, name=name, status=now, synced=SYNCED)


def view_of(name: str, uidvalidity: int = 5) -> FolderView:
    view = FolderView(name, uidvalidity, 10)
    view.rebase(range(1, 11))
    return view


@pytest.mark.parametrize(
    ("folder", "view", "expected"),
    [
        (record(), None, Plan.SKIP),  # nothing STATUS shows moved
        (record(uidnext=12, messages=11), None, Plan.COUNTS),  # new mail
        (record(messages=9), None, Plan.COUNTS),  # an expunge
        (record(messages=11, uidnext=12, unseen=4), None, Plan.COUNTS),  # unread new mail
        (record(unseen=2), None, Plan.FULL),  # UNSEEN alone moved: a \Seen change
        (record(uidvalidity=6), None, Plan.FULL),
        (record("INBOX"), None, Plan.FULL),  # kept open: scanned, then followed
        (record("INBOX"), view_of("INBOX"), Plan.SKIP),  # it heard nothing
        (record("INBOX", unseen=0), view_of("INBOX"), Plan.VIEW),
        (record("INBOX"), view_of("INBOX", uidvalidity=4), Plan.FULL),
        (record("Archive"), view_of("INBOX"), Plan.SKIP),  # a view of another folder
    ],
)
def test_plan(folder: MailboxRecord, view: FolderView | None, expected: Plan) -> None:
    assert plan_folder(folder, view) is expected


def test_a_lost_view_means_a_full_scan() -> None:
    view = view_of("INBOX")
    view.lost = True
    assert plan_folder(record("INBOX"), view) is Plan.FULL


def test_scans_fall_due_after_the_interval() -> None:
    scans = FlagScans(threading.RLock())
    archive, inbox = record(), record("INBOX")
    never = MailboxRecord(id="new", upstream_key="new", name="New", synced=None)
    assert scans.due([archive, inbox, never], 60) == [archive]  # never scanned here: due
    assert scans.next_due(60) == float("inf")
    now = time.monotonic()
    scans.scanned(archive.id, now)
    assert scans.due([archive], 60) == [] and scans.next_due(60) == now + 60
    scans.scanned(archive.id, now - 61)
    assert scans.due([archive], 60) == [archive]


def test_a_view_that_heard_something_is_drained() -> None:
    view = view_of("INBOX")
    view.observe(read_untagged(b"* 3 FETCH (FLAGS (\\Seen))\r\n"))
    assert plan_folder(record("INBOX"), view) is Plan.VIEW
    view.drain()
    assert plan_folder(record("INBOX"), view) is Plan.SKIP
    view.observe(read_untagged(b"* 11 EXISTS\r\n"))
    assert plan_folder(record("INBOX"), view) is Plan.VIEW
