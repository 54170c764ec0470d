"""The sync core seen from outside: how much IMAP work a change costs, UIDVALIDITY changes,
a lost cache, and the fallback path's obedience to the advertised capabilities."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from imapclient import IMAPClient

import bridge.mail.account
from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import ImapConnection, UpstreamConfig
from bridge.imap.pool import ConnectionPool
from bridge.mail import sync
from bridge.store.cache import Cache
from bridge.store.records import Committed
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.upstreams import CYRUS, Upstream, dovecot_only, every_upstream
from tests.support.stores import lose_store

pytestmark = every_upstream

MESSAGE = b"From: a@example.com\r\nSubject: s\r\nMessage-ID: <%d@example.com>\r\n\r\nbody\r\n"


class RecordingPool(ConnectionPool):
    """A pool that remembers every connection it opened, to count commands on the wire."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.opened: list[ImapConnection] = []

        def opener(config: UpstreamConfig, username: str, password: str) -> ImapConnection:
            connection = ImapConnection.open(config, username, password)
            self.opened.append(connection)
            return connection

        super().__init__(config, opener=opener)

    def commands(self) -> list[str]:
        return [name for connection in self.opened for name in connection.commands]


@pytest.fixture
def recorded(upstream: Upstream, tmp_path: Path) -> Iterator[tuple[BridgeServer, RecordingPool]]:
    pool = RecordingPool(UpstreamConfig(upstream.host, upstream.port, tls="plain"))
    with BridgeServer(upstream.host, upstream.port, tmp_path, pool=pool) as server:
        yield server, pool


def count_transactions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the thread of each write transaction the cache opens."""
    written: list[str] = []
    transaction = Cache.transaction

    def counted(cache: Cache) -> AbstractContextManager[Committed]:
        written.append(threading.current_thread().name)
        return transaction(cache)

    monkeypatch.setattr(Cache, "transaction", counted)
    return written


def test_changes_cost_work_in_proportion_to_changed_folders(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
    request: pytest.FixtureRequest,
) -> None:
    server, pool = recorded
    for number in range(20):
        other.create_folder(f"Folder{number:02d}")
        other.append(f"Folder{number:02d}", MESSAGE % number)
    jmap = server.client(*account)
    state = jmap.call("Mailbox/get", {"ids": []})["state"]
    quiet_start = len(pool.commands())
    assert jmap.call("Mailbox/changes", {"sinceState": state})["updated"] == []
    quiet = pool.commands()[quiet_start:]

    other.append("Folder03", MESSAGE % 100)
    other.select_folder("Folder07")
    other.add_flags(other.search("ALL"), [b"\\Seen"])
    other.unselect_folder()
    start = len(pool.commands())
    changes = jmap.call("Mailbox/changes", {"sinceState": state})
    work = pool.commands()[start:]
    boxes = jmap.mailboxes()
    assert sorted(changes["updated"]) == sorted([boxes["Folder03"]["id"], boxes["Folder07"]["id"]])
    selects = [name for name in work if name in ("SELECT", "EXAMINE")]
    if "no-condstore" in request.node.callspec.id:
        # Without mod-sequences STATUS still shows new mail (Folder03) and a \Seen change
        # (Folder07's UNSEEN): those two are opened, on a side connection, so that the
        # pooled one keeps following INBOX (bridge/mail/flag_scan.py).
        assert quiet.count("LIST") == 1 and not [n for n in quiet if n in ("SELECT", "EXAMINE")]
        assert len(selects) == 2
    else:
        assert quiet.count("LIST") == 1 and not [n for n in quiet if n in ("SELECT", "EXAMINE")]
        assert work.count("LIST") == 1 and len(selects) == 2
        assert len(work) <= 8, work  # LIST, two EXAMINEs, their FETCHes, UNSELECT
    jmap.close()


def test_a_request_that_finds_nothing_new_writes_nothing(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The usual warm request: the upstream says nothing moved, so the cache takes no
    write transaction (no lock, no round trips to a database store), and the states hold."""
    server, _ = recorded
    for number in range(3):
        other.append("INBOX", MESSAGE % number)
    jmap = server.client(*account)
    inbox = jmap.mailboxes()["INBOX"]["id"]
    page = {"filter": {"inMailbox": inbox}, "sort": [{"property": "receivedAt"}]}
    ids = jmap.call("Email/query", page)["ids"]
    states = [jmap.call(method, {"ids": []})["state"] for method in ("Mailbox/get", "Email/get")]
    written = count_transactions(monkeypatch)
    for _ in range(3):
        assert jmap.call("Email/query", page)["ids"] == ids
        assert [jmap.call(m, {"ids": []})["state"] for m in ("Mailbox/get", "Email/get")] == states
    assert written == []
    monkeypatch.undo()
    other.append("INBOX", MESSAGE % 3)
    assert len(jmap.call("Email/query", page)["ids"]) == 4  # and a change still lands
    jmap.close()


def test_new_mail_in_a_folder_lands_in_one_write_transaction(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """New mail moves the folder's STATUS and brings a delta: both are written together,
    and what was written holds (the requests after it find nothing to write)."""
    server, _ = recorded
    for number in range(3):
        other.append("INBOX", MESSAGE % number)
    jmap = server.client(*account)
    inbox = jmap.mailboxes()["INBOX"]["id"]
    page = {"filter": {"inMailbox": inbox}, "sort": [{"property": "receivedAt"}]}
    assert len(jmap.call("Email/query", page)["ids"]) == 3
    written = count_transactions(monkeypatch)
    other.append("INBOX", MESSAGE % 3)
    assert len(jmap.call("Email/query", page)["ids"]) == 4
    assert jmap.mailboxes()["INBOX"]["totalEmails"] == 4
    assert len(written) == 1, written
    written.clear()
    for _ in range(3):
        assert len(jmap.call("Email/query", page)["ids"]) == 4
    assert written == []
    jmap.close()


def test_inbox_stays_open_and_its_changes_need_no_select(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
    request: pytest.FixtureRequest,
) -> None:
    server, pool = recorded
    for number in range(3):
        other.append("INBOX", MESSAGE % number)
    jmap = server.client(*account)
    before = jmap.call("Email/get", {"ids": []})["state"]
    other.select_folder("INBOX")
    other.add_flags([1], [b"\\Flagged"])
    other.delete_messages([2])
    other.expunge()
    other.unselect_folder()
    other.append("INBOX", MESSAGE % 10)
    start = len(pool.commands())
    changes = jmap.call("Email/changes", {"sinceState": before})
    work = pool.commands()[start:]
    assert [len(changes[kind]) for kind in ("created", "updated", "destroyed")] == [1, 1, 1]
    flagged = jmap.call("Email/get", {"ids": changes["updated"], "properties": ["keywords"]})
    assert flagged["list"][0]["keywords"] == {"$flagged": True}
    # A NOOP brings the open INBOX up to date; one FETCH asks for what changed. Without
    # mod-sequences the NOOP's unsolicited FETCH and EXPUNGE said it, and the FETCH reads
    # only the new message (bridge/imap/flagview.py).
    assert work[:2] == ["NOOP", "LIST"] and "EXAMINE" not in work and "SELECT" not in work
    fetches = 1 if "no-condstore" in request.node.callspec.id else 2  # + CHANGEDSINCE
    assert work.count("UID FETCH") == fetches, work
    jmap.close()


def test_fallback_obeys_the_advertised_capabilities(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
    request: pytest.FixtureRequest,
) -> None:
    server, pool = recorded
    other.append("INBOX", MESSAGE % 1)
    jmap = server.client(*account)
    assert jmap.mailboxes()["INBOX"]["totalEmails"] == 1
    other.select_folder("INBOX")
    other.add_flags(other.search("ALL"), [b"\\Seen"])
    assert jmap.mailboxes()["INBOX"]["unreadEmails"] == 0
    for connection in pool.opened:
        if "no-condstore" in request.node.callspec.id:
            assert not connection.modseq and "ENABLE" not in connection.commands
        else:
            assert connection.qresync
    jmap.close()


@dovecot_only  # doveadm sets the UIDVALIDITY
def test_uidvalidity_change_remaps_the_folder(
    upstream: Dovecot, jmap: JmapClient, other: IMAPClient, account: tuple[str, str]
) -> None:
    for number in range(3):
        other.append("INBOX", MESSAGE % number)
    before = jmap.mailboxes()["INBOX"]
    state = jmap.call("Mailbox/get", {"ids": []})["state"]
    subprocess.run(
        ["doveadm", "-c", str(upstream.config_path), "mailbox", "update", "-u", account[0],
         "--uid-validity", "12345", "INBOX"],
        check=True, capture_output=True,
    )  # fmt: skip
    other.noop()
    assert other.select_folder("INBOX")[b"UIDVALIDITY"] == 12345
    after = jmap.mailboxes()["INBOX"]
    assert after["id"] == before["id"]
    assert after["totalEmails"] == 3
    changes = jmap.call("Mailbox/changes", {"sinceState": state})
    assert "error" not in changes


def test_a_lost_cache_costs_only_time(
    upstream: Upstream, tmp_path: Path, account: tuple[str, str], other: IMAPClient
) -> None:
    other.create_folder("Keep")
    other.append("Keep", MESSAGE % 1)
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data") as server:
        jmap = server.client(*account)
        before = jmap.mailboxes()
        state = jmap.call("Mailbox/get", {"ids": []})["state"]
        jmap.close()
    lose_store(tmp_path / "data")
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data") as server:
        jmap = server.client(*account)
        after = jmap.mailboxes()
        assert {name: box["id"] for name, box in after.items()} == {
            name: box["id"] for name, box in before.items()
        }
        assert after["Keep"]["totalEmails"] == 1
        # The old state belongs to the lost cache: the client must resync, not trust a delta.
        changes = jmap.call("Mailbox/changes", {"sinceState": state})
        assert changes["error"]["type"] == "cannotCalculateChanges"
        jmap.close()


@dovecot_only  # what is cheap on Dovecot; other servers get their folder closed
def test_a_sync_opens_inbox_before_it_lists_the_folders(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Dovecot the open INBOX's STATUS comes from the session's view, far cheaper than
    with nothing selected; and the connection goes back to the pool with INBOX open."""
    # Other folders on the same connection, as where INBOX is not worth keeping open (a
    # small one with mod-sequences): see test_work_in_other_folders_leaves_a_kept_inbox_open.
    monkeypatch.setattr(bridge.mail.account, "keeps_inbox", lambda conn, records: False)
    server, pool = recorded
    other.create_folder("Elsewhere")
    other.append("Elsewhere", MESSAGE % 1)
    jmap = server.client(*account)
    elsewhere = jmap.mailboxes()["Elsewhere"]["id"]
    ids = jmap.call("Email/query", {"filter": {"inMailbox": elsewhere}})["ids"]
    # Reading a body opens its folder; INBOX is not open on that connection any more.
    got = jmap.call("Email/get", {"ids": ids, "properties": ["bodyValues"],
                                  "fetchAllBodyValues": True})  # fmt: skip
    assert got["list"][0]["bodyValues"]
    assert [c.selected for c in pool.opened] == ["Elsewhere"]
    start = len(pool.commands())
    jmap.call("Mailbox/get", {"ids": None})
    work = pool.commands()[start:]
    assert "EXAMINE" in work and work.index("EXAMINE") < work.index("LIST"), work
    assert [c.selected for c in pool.opened] == ["INBOX"]
    jmap.close()


@dovecot_only  # what is cheap on Dovecot; other servers get their folder closed
def test_renaming_or_destroying_another_folder_leaves_inbox_open(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
) -> None:
    """Dovecot ends a session whose open folder is renamed or deleted, so bridge leaves
    that folder first; INBOX, open between requests, stays open for any other folder's:
    the syncs around the change ask it for news (NOOP) rather than open it again."""
    server, pool = recorded
    other.create_folder("Old")
    jmap = server.client(*account)
    made = jmap.mailboxes()["Old"]["id"]
    other.append("INBOX", MESSAGE % 1)
    inbox = {"inMailbox": jmap.mailboxes()["INBOX"]["id"]}
    assert len(jmap.call("Email/query", {"filter": inbox})["ids"]) == 1
    assert [c.selected for c in pool.opened][:1] == ["INBOX"]
    start = len(pool.commands())
    renamed = jmap.call("Mailbox/set", {"update": {made: {"name": "New"}}})
    assert renamed["updated"] == {made: None}, renamed
    assert jmap.call("Mailbox/set", {"destroy": [made]})["destroyed"] == [made]
    work = pool.commands()[start:]
    assert "RENAME" in work and "DELETE" in work, work
    assert not {"SELECT", "EXAMINE", "UNSELECT"} & set(work), work
    assert [c.selected for c in pool.opened][:1] == ["INBOX"]
    assert "New" not in jmap.mailboxes()
    jmap.close()


def test_a_new_empty_folder_is_synced_without_opening_it(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
    request: pytest.FixtureRequest,
) -> None:
    """With mod-sequences STATUS says all of an empty folder's first sync: no SELECT of it
    (nor of INBOX again after it); mail that lands in it later is synced from there."""
    server, pool = recorded
    jmap = server.client(*account)
    assert "Fresh" not in jmap.mailboxes()
    other.create_folder("Fresh")
    start = len(pool.commands())
    fresh = jmap.mailboxes()["Fresh"]
    work = pool.commands()[start:]
    assert fresh["totalEmails"] == 0 and fresh["unreadEmails"] == 0
    if "no-condstore" not in request.node.callspec.id:
        assert not {"SELECT", "EXAMINE"} & set(work), work
    other.append("Fresh", MESSAGE % 1)
    ids = jmap.call("Email/query", {"filter": {"inMailbox": fresh["id"]}})["ids"]
    assert len(ids) == 1
    assert jmap.mailboxes()["Fresh"]["totalEmails"] == 1
    jmap.close()


@dovecot_only  # what is cheap on Dovecot; other servers get their folder closed
def test_inbox_opened_for_a_write_stays_open_for_the_next_requests(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
) -> None:
    """A write opens INBOX read-write; it stays so in the pool, and the syncs and writes
    after it read and write it as it is open: on a big Maildir each SELECT or EXAMINE
    would cost Dovecot a scan."""
    server, pool = recorded
    other.append("INBOX", MESSAGE % 1)
    jmap = server.client(*account)
    inbox = jmap.mailboxes()["INBOX"]["id"]
    (email,) = jmap.call("Email/query", {"filter": {"inMailbox": inbox}})["ids"]
    flagged = jmap.call("Email/set", {"update": {email: {"keywords/$flagged": True}}})
    assert email in flagged["updated"], flagged
    start = len(pool.commands())
    seen = jmap.call("Email/set", {"update": {email: {"keywords/$seen": True}}})
    assert email in seen["updated"], seen
    got = jmap.call("Email/get", {"ids": [email], "properties": ["keywords"]})["list"]
    assert got[0]["keywords"] == {"$flagged": True, "$seen": True}
    assert jmap.mailboxes()["INBOX"]["unreadEmails"] == 0
    work = pool.commands()[start:]
    assert "UID STORE" in work and not {"SELECT", "EXAMINE"} & set(work), work
    jmap.close()


@pytest.mark.upstreams("full", CYRUS)
def test_a_move_out_of_a_big_inbox_leaves_it_open(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With mod-sequences, the sync after a move out of a big INBOX reads the other folder
    on a side session: INBOX stays open on the pooled connection, since on a big Maildir
    each SELECT or EXAMINE of it costs Dovecot a scan."""
    monkeypatch.setattr(sync, "SIDE_FROM", 2)  # big, for this test
    server, pool = recorded
    for number in range(3):
        other.append("INBOX", MESSAGE % number)
    jmap = server.client(*account)
    boxes = jmap.mailboxes()
    inbox, archive = boxes["INBOX"]["id"], boxes["Archive"]["id"]
    email = jmap.call("Email/query", {"filter": {"inMailbox": inbox}})["ids"][0]
    before = {id(connection): len(connection.commands) for connection in pool.opened}
    moved = jmap.call("Email/set", {"update": {email: {"mailboxIds": {archive: True}}}})
    assert email in moved["updated"], moved
    got = jmap.call("Email/get", {"ids": [email], "properties": ["mailboxIds"]})["list"]
    assert got[0]["mailboxIds"] == {archive: True}
    counts = {m["name"]: m["totalEmails"] for m in jmap.mailboxes().values()}
    assert counts["INBOX"] == 2 and counts["Archive"] == 1
    assert len(jmap.call("Email/query", {"filter": {"inMailbox": inbox}})["ids"]) == 2
    [main] = [c for c in pool.opened if "UID MOVE" in c.commands[before.get(id(c), 0) :]]
    after = main.commands[main.commands.index("UID MOVE", before[id(main)]) + 1 :]
    assert not {"SELECT", "EXAMINE", "UNSELECT"} & set(after), after
    jmap.close()


def test_work_in_other_folders_leaves_a_kept_inbox_open(
    recorded: tuple[BridgeServer, RecordingPool],
    account: tuple[str, str],
    other: IMAPClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading a message body in Archive, flagging it and moving it to INBOX go to a
    second pooled connection while the first keeps INBOX open (a big INBOX with
    mod-sequences; without them, one its view follows): that one is never taken off INBOX,
    and every answer is as it would be on one connection."""
    monkeypatch.setattr(sync, "SIDE_FROM", 1)  # big, for this test
    server, pool = recorded
    other.append("INBOX", MESSAGE % 1)
    other.append("Archive", MESSAGE % 2)
    jmap = server.client(*account)
    boxes = jmap.mailboxes()
    inbox, archive = boxes["INBOX"]["id"], boxes["Archive"]["id"]
    jmap.call("Email/query", {"filter": {"inMailbox": inbox}})
    jmap.call("Email/query", {"filter": {"inMailbox": inbox}})  # a view follows INBOX now
    main = pool.opened[0]
    assert main.selected == "INBOX"
    start = len(main.commands)
    [filed] = jmap.call("Email/query", {"filter": {"inMailbox": archive}})["ids"]
    body = jmap.call("Email/get", {"ids": [filed], "properties": ["bodyValues"],
                                   "fetchAllBodyValues": True})["list"][0]  # fmt: skip
    assert [value["value"] for value in body["bodyValues"].values()] == ["body\n"]
    done = jmap.call("Email/set", {"update": {filed: {"keywords/$flagged": True}}})
    assert filed in done["updated"], done
    done = jmap.call("Email/set", {"update": {filed: {"mailboxIds": {inbox: True}}}})
    assert filed in done["updated"], done
    got = jmap.call("Email/get", {"ids": [filed], "properties": ["mailboxIds", "keywords"]})
    assert got["list"][0]["mailboxIds"] == {inbox: True}
    assert got["list"][0]["keywords"] == {"$flagged": True}
    counts = {m["name"]: m["totalEmails"] for m in jmap.mailboxes().values()}
    assert counts["INBOX"] == 2 and counts["Archive"] == 0
    work = main.commands[start:]
    assert not {"SELECT", "EXAMINE", "UNSELECT"} & set(work), work
    other.select_folder("INBOX", readonly=True)
    assert len(other.search(["FLAGGED"])) == 1
    jmap.close()
