"""A folder the upstream lists but will not open costs that folder only, not the account."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import ImapConnection, MailboxListing, UpstreamConfig
from bridge.imap.pool import ConnectionPool
from bridge.mail.indexer import BackgroundIndexer
from bridge.mail.sync import Syncer
from tests.integration.conftest import USERS
from tests.integration.server import BridgeServer, JmapClient
from tests.support.stores import open_test_cache

NO_RIGHTS = {
    "mayReadItems": False, "mayAddItems": False, "mayRemoveItems": False,
    "maySetSeen": False, "maySetKeywords": False, "mayCreateChild": False,
    "mayRename": False, "mayDelete": False, "maySubmit": False,
}  # fmt: skip


@pytest.fixture
def upstream(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    return dovecot_factory()


@pytest.fixture
def other(upstream: Dovecot) -> Iterator[IMAPClient]:
    client = IMAPClient(upstream.host, port=upstream.port, ssl=False)
    client.login("alice", USERS["alice"])
    yield client
    client.logout()


@pytest.fixture
def jmap(upstream: Dovecot, tmp_path: Path) -> Iterator[JmapClient]:
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data") as bridge:
        client = bridge.client("alice", USERS["alice"])
        yield client
        client.close()


def message(subject: str) -> bytes:
    head = f"From: a@b.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@t>\r\n"
    return (head + "\r\nx\r\n").encode()


def query(jmap: JmapClient, mailbox_id: str) -> list[str]:
    result = jmap.call("Email/query", {"filter": {"inMailbox": mailbox_id}})
    assert "error" not in result, result
    ids: list[str] = result["ids"]
    return ids


def logged(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    """What bridge logged that holds ``fragment``."""
    return [r.getMessage() for r in caplog.records if fragment in r.getMessage()]


def unreadable_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return logged(caplog, "cannot be read")


def test_parent_deleted_with_children_leaves_the_rest_working(
    jmap: JmapClient, other: IMAPClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    other.create_folder("Proj")
    other.create_folder("Proj/Sub")
    other.append("Proj", message("in-parent"))
    other.append("Proj/Sub", message("in-child"))
    other.append("INBOX", message("in-inbox"))
    before = jmap.mailboxes()
    parent_id, sub_id = before["Proj"]["id"], before["Proj/Sub"]["id"]
    [in_parent] = query(jmap, parent_id)

    # Another client deletes the parent: Dovecot still LISTs it (\HasChildren), but
    # STATUS and EXAMINE answer NO.
    other.delete_folder("Proj")
    boxes = jmap.mailboxes()
    assert boxes["Proj"]["id"] == parent_id
    assert boxes["Proj"]["myRights"] == NO_RIGHTS
    assert boxes["Proj"]["totalEmails"] == 0
    assert boxes["Proj/Sub"]["parentId"] == parent_id  # the tree holds
    assert query(jmap, parent_id) == []
    assert jmap.call("Email/get", {"ids": [in_parent]})["notFound"] == [in_parent]

    # Every other folder works: read, query, write.
    [in_child] = query(jmap, sub_id)
    got = jmap.call("Email/get", {"ids": [in_child], "properties": ["subject", "mailboxIds"]})
    assert got["list"][0]["subject"] == "in-child"
    drafts, inbox = boxes["Drafts"]["id"], boxes["INBOX"]["id"]
    created = jmap.call("Email/set", {"create": {"d": {
        "mailboxIds": {drafts: True}, "subject": "draft while Proj is broken",
        "bodyValues": {"b": {"value": "x"}}, "textBody": [{"partId": "b"}],
    }}})  # fmt: skip
    assert "d" in created["created"], created
    moved = jmap.call("Email/set", {"update": {in_child: {
        "keywords/$flagged": True, "mailboxIds": {inbox: True},
    }}})  # fmt: skip
    assert in_child in moved["updated"], moved
    refused = jmap.call("Email/set", {"create": {"p": {
        "mailboxIds": {parent_id: True}, "subject": "into the broken folder",
    }}})  # fmt: skip
    assert refused["notCreated"]["p"]["type"] == "invalidProperties"
    other.select_folder("INBOX", readonly=True)
    assert other.search(["HEADER", "Message-ID", "<in-child@t>", "FLAGGED"])
    assert len(unreadable_warnings(caplog)) == 1  # once for the change, not per request

    # Recreated by another client: the folder comes back by itself, readable.
    other.create_folder("Proj")
    other.append("Proj", message("after"))
    boxes = jmap.mailboxes()
    assert boxes["Proj"]["myRights"]["mayReadItems"] is True
    assert boxes["Proj/Sub"]["parentId"] == boxes["Proj"]["id"]
    [after] = query(jmap, boxes["Proj"]["id"])
    got = jmap.call("Email/get", {"ids": [after], "properties": ["subject"]})
    assert got["list"] == [{"id": after, "subject": "after"}]
    assert len(unreadable_warnings(caplog)) == 1


def test_folder_broken_on_the_server_comes_back_whole(
    jmap: JmapClient, other: IMAPClient, upstream: Dovecot
) -> None:
    other.create_folder("Fragile")
    other.append("Fragile", message("fragile"))
    boxes = jmap.mailboxes()
    fragile_id = boxes["Fragile"]["id"]
    [fragile] = query(jmap, fragile_id)
    # Dovecot cannot read the folder's Maildir: NO [SERVERBUG] to its STATUS and EXAMINE.
    maildir = upstream.mail_dir("alice") / ".Fragile"
    maildir.chmod(0)
    try:
        broken = jmap.mailboxes()
        assert broken["Fragile"]["myRights"] == NO_RIGHTS
        assert query(jmap, fragile_id) == []
        assert jmap.call("Email/get", {"ids": [fragile]})["notFound"] == [fragile]
        assert query(jmap, broken["INBOX"]["id"]) == query(jmap, boxes["INBOX"]["id"])
    finally:
        maildir.chmod(0o700)
    # Readable again: the same Mailbox, and (by Dovecot's X-GUID) the same Email.
    mended = jmap.mailboxes()
    assert mended["Fragile"]["id"] == fragile_id
    assert mended["Fragile"]["myRights"] == boxes["Fragile"]["myRights"]
    assert query(jmap, fragile_id) == [fragile]


def test_folder_gone_between_list_and_select(
    upstream: Dovecot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    other = IMAPClient(upstream.host, port=upstream.port, ssl=False)
    other.login("alice", USERS["alice"])
    other.create_folder("Brief")
    other.append("Brief", message("brief"))

    def opener(config: UpstreamConfig, username: str, password: str) -> ImapConnection:
        connection = ImapConnection.open(config, username, password)
        listed = connection.list_mailboxes

        def list_then_delete() -> list[MailboxListing]:
            # Another client deletes the folder right after bridge's LIST showed it.
            listings = listed()
            if "Brief" in {listing.name for listing in listings}:
                other.delete_folder("Brief")
            return listings

        connection.list_mailboxes = list_then_delete  # type: ignore[method-assign]
        return connection

    pool = ConnectionPool(UpstreamConfig(upstream.host, upstream.port, tls="plain"),
                          opener=opener)  # fmt: skip
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data", pool=pool) as bridge:
        jmap = bridge.client("alice", USERS["alice"])
        first = jmap.mailboxes()  # synced on: the folder is shown, unreadable
        assert first["Brief"]["myRights"] == NO_RIGHTS
        assert first["Brief"]["totalEmails"] == 0
        assert first["INBOX"]["myRights"]["mayReadItems"] is True
        assert any("EXAMINE NO" in warning for warning in unreadable_warnings(caplog))
        assert "Brief" not in jmap.mailboxes()  # the next LIST does not show it
        jmap.close()
    other.logout()


def test_indexer_skips_a_folder_gone_since_the_sync(upstream: Dovecot, other: IMAPClient) -> None:
    for folder in ("Keep", "Vanish"):
        other.create_folder(folder)
        other.append(folder, message(folder.lower()))
    cache = open_test_cache()
    config = UpstreamConfig(upstream.host, upstream.port, tls="plain")
    with ImapConnection.open(config, "alice", USERS["alice"]) as conn:
        # Every folder left to the indexer, as for a big account.
        report = Syncer(cache, conn).sync(foreground_limit=0)
        assert {"Keep", "Vanish"} <= set(report.unindexed)
        other.delete_folder("Vanish")
        BackgroundIndexer(cache, threading.RLock()).index_all(conn)
    records = {record.name: record for record in cache.mailboxes()}
    assert records["Keep"].indexed and records["Keep"].counts.total_emails == 1
    assert not records["Vanish"].selectable and records["Vanish"].counts.total_emails == 0
    cache.close()
