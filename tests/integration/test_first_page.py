"""A folder too big to index during the request: its first page comes from the server's
SORT, its counts from STATUS, and the index fills in behind, newest first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.demo.sample import bulk_messages
from bridge.demo.seed import write_maildir
from bridge.mail.indexer import BackgroundIndexer
from bridge.mail.sync import FOREGROUND_LIMIT
from tests.integration.server import BridgeServer, JmapClient

COUNT = FOREGROUND_LIMIT + 300
NEWEST = [{"property": "receivedAt", "isAscending": False}]


def wait_indexed(jmap: JmapClient) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        status = jmap.http.get("/jmap/status").json()
        if not status["indexing"] and all(
            f["indexed"] == f["total"] for f in status["folders"].values()
        ):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_first_page_before_the_index(
    upstream: Dovecot,
    account: tuple[str, str],
    bridge: BridgeServer,
    jmap: JmapClient,
    other: IMAPClient,
) -> None:
    write_maildir(upstream.mail_dir(account[0]), bulk_messages(COUNT, seed=7))
    other.select_folder("INBOX", readonly=True)
    newest_uids = other.sort(["REVERSE", "ARRIVAL"])[:20]
    newest_dates = {d[b"INTERNALDATE"] for d in other.fetch(newest_uids, ["INTERNALDATE"]).values()}
    state = jmap.call("Email/get", {"ids": []})["state"]
    inbox = jmap.mailboxes()["INBOX"]
    assert inbox["totalEmails"] == COUNT
    page = jmap.call("Email/query", {"filter": {"inMailbox": inbox["id"]}, "sort": NEWEST,
                                     "limit": 20, "calculateTotal": True})  # fmt: skip
    assert page["total"] == COUNT and len(page["ids"]) == 20
    emails = jmap.call("Email/get", {"ids": page["ids"], "properties": ["receivedAt", "subject"]})
    received = [e["receivedAt"] for e in emails["list"]]
    assert received == sorted(received, reverse=True)
    assert len({d.astimezone().replace(tzinfo=None) for d in newest_dates}) == len(newest_dates)

    status = wait_indexed(jmap)
    assert status["folders"]["INBOX"] == {"indexed": COUNT, "total": COUNT}
    # The first page was answered without the header index's words of its Emails: the
    # indexer has filled them in since, so a from: query needs no upstream SEARCH for them.
    with bridge.bridge.users.get(account[0]).cache.sql() as conn:
        unknown = conn.execute("SELECT COUNT(*) FROM header_text WHERE inexact IS NULL")
        assert unknown.fetchone()[0] == 0
    # The cache now gives the same first page, and the exact counts.
    again = jmap.call("Email/query", {"filter": {"inMailbox": inbox["id"]}, "sort": NEWEST,
                                      "limit": 20, "calculateTotal": True})  # fmt: skip
    assert again["ids"] == page["ids"] and again["total"] == COUNT
    inbox = jmap.mailboxes()["INBOX"]
    assert inbox["totalEmails"] == COUNT and inbox["totalThreads"] < COUNT
    # Everything the index found since the first state is reported, each Email once.
    created: list[str] = []
    while True:
        changes = jmap.call("Email/changes", {"sinceState": state, "maxChanges": 500})
        created += changes["created"]
        state = changes["newState"]
        if not changes["hasMoreChanges"]:
            break
    assert len(created) == len(set(created)) == COUNT


def test_a_query_the_cache_must_answer_waits_for_the_index(
    upstream: Dovecot, account: tuple[str, str], jmap: JmapClient
) -> None:
    write_maildir(upstream.mail_dir(account[0]), bulk_messages(COUNT, seed=8))
    result = jmap.call("Email/query", {"filter": {"hasKeyword": "$seen"}, "calculateTotal": True})
    unread = jmap.call("Email/query", {"filter": {"notKeyword": "$seen"}, "calculateTotal": True})
    assert result["total"] + unread["total"] == COUNT


@pytest.fixture
def held_indexer(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Background indexing waits until the event is set (at the latest when the test ends),
    so that a test can act while a big folder is not indexed yet."""
    release = threading.Event()
    run = BackgroundIndexer._run

    def held(self: BackgroundIndexer, *args: Any) -> None:
        release.wait(60)
        run(self, *args)

    monkeypatch.setattr(BackgroundIndexer, "_run", held)
    yield release
    release.set()


@pytest.fixture
def unindexed_inbox(
    upstream: Dovecot, account: tuple[str, str], jmap: JmapClient, held_indexer: threading.Event
) -> tuple[str, str]:
    """The ids of INBOX, too big to index during a request and not indexed yet, and of
    Archive, as the first request finds them."""
    write_maildir(upstream.mail_dir(account[0]), bulk_messages(COUNT, seed=9))
    boxes = jmap.mailboxes()
    return boxes["INBOX"]["id"], boxes["Archive"]["id"]


def messages(other: IMAPClient, name: str) -> int:
    return other.folder_status(name, ["MESSAGES"])[b"MESSAGES"]


def test_writes_before_the_index_show_at_once_and_lose_nothing(
    jmap: JmapClient,
    other: IMAPClient,
    unindexed_inbox: tuple[str, str],
    held_indexer: threading.Event,
) -> None:
    inbox, archive = unindexed_inbox
    page = jmap.call("Email/query", {"filter": {"inMailbox": inbox}, "sort": NEWEST,
                                     "limit": 5})["ids"]  # fmt: skip
    moved, destroyed = page[0], page[1]

    def placed(email_id: str) -> dict[str, Any]:
        properties = ["mailboxIds", "keywords"]
        [found] = jmap.call("Email/get", {"ids": [email_id], "properties": properties})["list"]
        return found

    flagged = jmap.call("Email/set", {"update": {moved: {"keywords/$flagged": True}}})
    assert flagged["updated"] == {moved: None}
    assert flagged["newState"] != flagged["oldState"]
    assert placed(moved)["keywords"].get("$flagged") is True
    jmap.call("Email/set", {"update": {moved: {"mailboxIds": {archive: True}}}})
    assert placed(moved)["mailboxIds"] == {archive: True}
    back = jmap.call("Email/set", {"update": {moved: {"mailboxIds": {inbox: True}}}})
    assert back["updated"] == {moved: None}
    assert placed(moved)["mailboxIds"] == {inbox: True}
    # Upstream: back in INBOX, flagged, and no copy lost on the way.
    assert messages(other, "INBOX") == COUNT
    assert messages(other, "Archive") == 0
    other.select_folder("INBOX", readonly=True)
    [newest] = other.sort(["REVERSE", "ARRIVAL"])[:1]
    assert b"\\Flagged" in other.get_flags([newest])[newest]

    created = jmap.call("Email/set", {"create": {"n": {
        "mailboxIds": {inbox: True}, "subject": "written before the index",
        "bodyValues": {"t": {"value": "hello"}},
        "textBody": [{"partId": "t", "type": "text/plain"}],
    }}})["created"]["n"]["id"]  # fmt: skip
    assert placed(created)["mailboxIds"] == {inbox: True}
    gone = jmap.call("Email/set", {"destroy": [destroyed]})
    assert gone["destroyed"] == [destroyed]
    assert jmap.call("Email/get", {"ids": [destroyed]})["notFound"] == [destroyed]
    assert messages(other, "INBOX") == COUNT

    held_indexer.set()
    wait_indexed(jmap)
    assert jmap.mailboxes()["INBOX"]["totalEmails"] == COUNT
    assert placed(moved) == {"id": moved, "mailboxIds": {inbox: True},
                             "keywords": {"$flagged": True}}  # fmt: skip
    assert placed(created)["mailboxIds"] == {inbox: True}
    assert jmap.call("Email/get", {"ids": [destroyed]})["notFound"] == [destroyed]


def test_a_move_by_another_client_before_the_index_is_not_trusted_to_a_copy(
    jmap: JmapClient, other: IMAPClient, unindexed_inbox: tuple[str, str]
) -> None:
    """Another client moves a message out of a folder not indexed yet: the cache still
    places it there beside its new folder, and a client taking it out of the new folder
    must see it moved back, not expunged from the only folder holding it (as it was)."""
    inbox, archive = unindexed_inbox
    [newest] = jmap.call("Email/query", {"filter": {"inMailbox": inbox}, "sort": NEWEST,
                                         "limit": 1})["ids"]  # fmt: skip
    other.select_folder("INBOX")
    other.move(other.sort(["REVERSE", "ARRIVAL"])[:1], "Archive")
    other.unselect_folder()  # Dovecot's STATUS of the open folder is the session's view
    # The client lists Archive, which shows the message there too.
    listed = jmap.call("Email/query", {"filter": {"inMailbox": archive}})["ids"]
    assert listed == [newest]
    result = jmap.call("Email/set", {"update": {newest: {"mailboxIds": {inbox: True}}}})
    assert result["updated"] == {newest: None}
    assert messages(other, "INBOX") == COUNT
    assert messages(other, "Archive") == 0
    [found] = jmap.call("Email/get", {"ids": [newest], "properties": ["mailboxIds"]})["list"]
    assert found["mailboxIds"] == {inbox: True}
