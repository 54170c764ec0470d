"""Sync without CONDSTORE/QRESYNC (advertised: Dovecot hides them): exact results without a
full flag scan per request (bridge/mail/flag_scan.py, bridge/imap/flagview.py).

INBOX, kept open on the pooled connections, is followed from the unsolicited responses the
server sends there; other folders show new mail, expunges and \\Seen changes at once and
other flag changes within ``flag_scan_interval``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import UpstreamConfig
from bridge.mail.flag_scan import START_DELAY
from tests.integration.conftest import NO_CONDSTORE
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.test_push import Events
from tests.integration.test_sync import RecordingPool

USERS = {f"nc{number}": f"nc-pw-{number}" for number in range(1, 6)}
MESSAGE = "From: a@example.com\r\nSubject: {0}\r\nMessage-ID: <{0}@example.com>\r\n\r\nbody\r\n"
INTERVAL = 1.0  # flag_scan_interval of the bridge under test


@pytest.fixture(scope="module")
def nocondstore(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    return dovecot_factory(users=USERS, hide=NO_CONDSTORE)


@pytest.fixture
def recorded(nocondstore: Dovecot, tmp_path: Path) -> Iterator[tuple[BridgeServer, RecordingPool]]:
    pool = RecordingPool(UpstreamConfig(nocondstore.host, nocondstore.port, tls="plain"))
    with BridgeServer(
        nocondstore.host, nocondstore.port, tmp_path, pool=pool, flag_scan_interval=INTERVAL
    ) as server:
        yield server, pool


def _other(server: Dovecot, user: str) -> IMAPClient:
    client = IMAPClient(server.host, port=server.port, ssl=False)
    client.login(user, USERS[user])
    return client


def _append(other: IMAPClient, folder: str, *subjects: str) -> None:
    for subject in subjects:
        other.append(folder, MESSAGE.format(subject).encode())


def _with_mail(
    server: BridgeServer, upstream: Dovecot, user: str, folder: str, *subjects: str
) -> tuple[IMAPClient, JmapClient]:
    """Another client that put these messages in ``folder`` (made first unless INBOX),
    and bridge's client."""
    other = _other(upstream, user)
    if folder != "INBOX":
        other.create_folder(folder)
    _append(other, folder, *subjects)
    return other, server.client(user, USERS[user])


def _uid(other: IMAPClient, folder: str, subject: str) -> int:
    other.select_folder(folder)
    (uid,) = other.search(["HEADER", "Subject", subject])
    return int(uid)


def _truth(other: IMAPClient, folder: str) -> dict[str, set[str]]:
    """Subject -> flags, as a fresh session reads them."""
    other.select_folder(folder, readonly=True)
    fetched = other.fetch(other.search("ALL"), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    other.unselect_folder()
    truth = {}
    for data in fetched.values():
        subject = data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
        truth[subject] = {flag.decode().lower() for flag in data[b"FLAGS"]} - {"\\recent"}
    return truth


def _seen_by_bridge(jmap: JmapClient, folder: str) -> dict[str, set[str]]:
    mailbox = jmap.mailboxes()[folder]["id"]
    ids = jmap.call("Email/query", {"filter": {"inMailbox": mailbox}})["ids"]
    got = jmap.call("Email/get", {"ids": ids, "properties": ["subject", "keywords"]})["list"]
    # IMAP's \Seen is JMAP's $seen and so on (RFC 8621 §4.1.1).
    return {e["subject"]: {k.replace("$", "\\", 1) if k in _SYSTEM else k
                           for k in e["keywords"]} for e in got}  # fmt: skip


_SYSTEM = {"$seen", "$flagged", "$answered", "$draft"}


def _changes(jmap: JmapClient, since: str) -> tuple[list[int], str]:
    found = jmap.call("Email/changes", {"sinceState": since})
    return [len(found[kind]) for kind in ("created", "updated", "destroyed")], found["newState"]


def _state(jmap: JmapClient) -> str:
    return str(jmap.call("Email/get", {"ids": []})["state"])


def test_another_clients_changes_to_inbox_show_exactly_without_a_scan(
    recorded: tuple[BridgeServer, RecordingPool], nocondstore: Dovecot
) -> None:
    server, pool = recorded
    other, jmap = _with_mail(server, nocondstore, "nc1", "INBOX", *(f"m{n}" for n in range(5)))
    state = _state(jmap)
    other.add_flags([_uid(other, "INBOX", "m1")], [b"\\Flagged"])
    other.add_flags([_uid(other, "INBOX", "m2")], [b"$Work", b"\\Seen"])
    other.delete_messages([_uid(other, "INBOX", "m3")])
    other.expunge()
    other.unselect_folder()
    _append(other, "INBOX", "m5")
    start = len(pool.commands())
    counts, state = _changes(jmap, state)
    work = pool.commands()[start:]
    assert counts == [1, 2, 1]
    # The open INBOX said it all: no SELECT, and one FETCH, of the new message only.
    assert not {"SELECT", "EXAMINE"} & set(work) and work.count("UID FETCH") == 1, work
    assert _seen_by_bridge(jmap, "INBOX") == _truth(other, "INBOX")

    other.select_folder("INBOX")
    other.remove_flags([_uid(other, "INBOX", "m2")], [b"$Work"])
    other.unselect_folder()
    start = len(pool.commands())
    counts, state = _changes(jmap, state)
    assert counts == [0, 1, 0] and "UID FETCH" not in pool.commands()[start:]
    assert _seen_by_bridge(jmap, "INBOX") == _truth(other, "INBOX")
    other.logout()
    jmap.close()


def test_after_a_dropped_connection_one_full_scan_keeps_it_exact(
    recorded: tuple[BridgeServer, RecordingPool], nocondstore: Dovecot
) -> None:
    server, pool = recorded
    other, jmap = _with_mail(server, nocondstore, "nc2", "INBOX", *(f"d{n}" for n in range(4)))
    state = _state(jmap)
    for drop in ("kick", "close"):
        if drop == "kick":
            subprocess.run(["doveadm", "-c", str(nocondstore.config_path), "kick", "nc2"],
                           check=True, capture_output=True)  # fmt: skip
            other = _other(nocondstore, "nc2")
        else:
            server.bridge.pool.close_all()
        # Changes while no connection of bridge's has INBOX open: nobody is told.
        other.select_folder("INBOX")
        uids = other.search("ALL")
        other.add_flags(uids[:1], [f"${drop}".encode()])
        other.delete_messages(uids[1:2])
        other.expunge()
        other.unselect_folder()
        _append(other, "INBOX", f"after-{drop}")
        start = len(pool.commands())
        counts, state = _changes(jmap, state)
        assert counts == [1, 1, 1], drop
        assert "EXAMINE" in pool.commands()[start:]  # opened afresh, and scanned
        assert _seen_by_bridge(jmap, "INBOX") == _truth(other, "INBOX")
    other.logout()
    jmap.close()


def test_a_folder_not_kept_open(
    recorded: tuple[BridgeServer, RecordingPool], nocondstore: Dovecot
) -> None:
    server, pool = recorded
    other, jmap = _with_mail(server, nocondstore, "nc3", "Side", "s0", "s1", "s2")
    state = _state(jmap)
    # New mail and an expunge: at once, from STATUS.
    _append(other, "Side", "s3")
    other.delete_messages([_uid(other, "Side", "s0")])
    other.expunge()
    start = len(pool.commands())
    counts, state = _changes(jmap, state)
    assert counts == [1, 0, 1]
    # Side is opened on a connection of its own: the pooled one keeps INBOX open, and
    # does not scan it again.
    assert pool.commands()[start:].count("EXAMINE") == 1
    # \Seen moves UNSEEN in STATUS: at once too.
    other.add_flags([_uid(other, "Side", "s1")], [b"\\Seen"])
    counts, state = _changes(jmap, state)
    assert counts == [0, 1, 0]
    # \Flagged shows in no STATUS item: within the flag scan interval.
    other.add_flags([_uid(other, "Side", "s2")], [b"\\Flagged"])
    other.unselect_folder()
    changed = time.monotonic()
    while True:
        counts, state = _changes(jmap, state)
        if counts != [0, 0, 0]:
            break
        # A round starts START_DELAY after the request that found the folder due.
        assert time.monotonic() - changed < INTERVAL + START_DELAY + 3, "never scanned"
        time.sleep(0.1)
    assert counts == [0, 1, 0]
    assert _seen_by_bridge(jmap, "Side") == _truth(other, "Side")
    other.logout()
    jmap.close()


def test_an_idle_stream_hears_of_a_flag_outside_inbox_within_the_interval(
    recorded: tuple[BridgeServer, RecordingPool], nocondstore: Dovecot
) -> None:
    server = recorded[0]
    other, jmap = _with_mail(server, nocondstore, "nc4", "Far", "f0")
    before = _state(jmap)
    events = Events(jmap, "types=Email&closeafter=no&ping=0")
    deadline = time.monotonic() + 5
    while (watcher := server.bridge.watchers.get("nc4")) is None or not watcher.syncs:
        assert time.monotonic() < deadline, "no watcher"
        time.sleep(0.02)
    other.add_flags([_uid(other, "Far", "f0")], [b"\\Flagged"])
    changed = time.monotonic()
    while True:
        name, data, _ = events.next(timeout=INTERVAL + START_DELAY + 3)
        if name == "state" and data["changed"][jmap.account_id]["Email"] != before:
            break
    assert time.monotonic() - changed < INTERVAL + START_DELAY + 3
    counts, _ = _changes(jmap, before)
    assert counts == [0, 1, 0]
    assert _seen_by_bridge(jmap, "Far") == _truth(other, "Far")
    other.logout()
    jmap.close()


def test_a_folder_deleted_under_the_side_connection(
    recorded: tuple[BridgeServer, RecordingPool], nocondstore: Dovecot
) -> None:
    server, _ = recorded
    other, jmap = _with_mail(server, nocondstore, "nc5", "Gone", "g0")
    state = _state(jmap)
    _append(other, "Gone", "g1")  # synced on the side connection, which keeps Gone open
    counts, state = _changes(jmap, state)
    assert counts == [1, 0, 0]
    other.delete_folder("Gone")  # Dovecot ends the side session at its next command
    _append(other, "INBOX", "i0")
    counts, state = _changes(jmap, state)
    assert counts == [1, 0, 2]
    assert "Gone" not in jmap.mailboxes()
    assert _seen_by_bridge(jmap, "INBOX") == _truth(other, "INBOX")
    other.logout()
    jmap.close()
