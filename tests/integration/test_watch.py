"""How bridge watches the upstream for push: NOTIFY where offered, else IDLE on INBOX plus a
sweep of the other folders; quiet when nothing changes; back after the upstream drops it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.mail.watcher import Watcher
from tests.integration.conftest import USERS
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.test_push import Events, states

MESSAGE = b"From: a@example.net\r\nSubject: watched\r\n\r\nbody\r\n"


def _watcher(server: BridgeServer, username: str, mode: str) -> Watcher:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        watcher = server.bridge.watchers.get(username)
        if watcher is not None and watcher.mode == mode and watcher.syncs:
            return watcher
        time.sleep(0.02)
    raise AssertionError(f"no {mode} watcher for {username}")


def _mode(upstream: Dovecot) -> str:
    """NOTIFY reports every change only with CONDSTORE; else IDLE on INBOX and polling."""
    return "idle" if "CONDSTORE" in upstream.hide_capabilities else "notify"


def _next_state(events: Events, account_id: str, timeout: float) -> tuple[dict[str, str], float]:
    started = time.monotonic()
    while True:
        name, data, _ = events.next(timeout=timeout)
        if name == "state":
            return states(data, account_id), time.monotonic() - started


def _imap(upstream: Dovecot, username: str, password: str) -> IMAPClient:
    client = IMAPClient(upstream.host, port=upstream.port, ssl=False)
    client.login(username, password)
    return client


def test_every_folder_is_reported_and_a_quiet_watcher_stays_quiet(
    bridge: BridgeServer, upstream: Dovecot, jmap: JmapClient, other: IMAPClient
) -> None:
    condstore = "CONDSTORE" not in upstream.hide_capabilities
    other.create_folder("Watched")
    other.append("Watched", MESSAGE)
    before = jmap.call("Email/get", {"ids": []})["state"]
    events = Events(jmap, "types=Email,Mailbox&closeafter=no&ping=0")
    # NOTIFY with CONDSTORE reports every change in every folder. Without CONDSTORE it
    # would not report flag changes outside the selected folder (RFC 5465 §5.2): bridge
    # IDLEs on INBOX and compares the other folders' STATUS every second, where a \Seen
    # change shows (UNSEEN); other flags wait for the flag scans (test_nocondstore.py).
    watcher = _watcher(bridge, jmap.session["username"], _mode(upstream))
    other.select_folder("Watched")
    other.add_flags([1], [b"\\Flagged" if condstore else b"\\Seen"])
    changed, latency = _next_state(events, jmap.account_id, timeout=5)
    assert latency < 2, latency
    assert jmap.call("Email/get", {"ids": []})["state"] == changed["Email"]
    update = jmap.call("Email/changes", {"sinceState": before})
    assert len(update["updated"]) == 1 and update["created"] == update["destroyed"] == []
    # Nothing is synced while nothing changes. The server may report the one change in
    # more than one message, the last after the first sync began (on a loaded machine,
    # seconds later): quiet starts once the syncs have stopped for two seconds.
    syncs, quiet_since, deadline = watcher.syncs, time.monotonic(), time.monotonic() + 15
    while time.monotonic() - quiet_since < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        if watcher.syncs != syncs:
            syncs, quiet_since = watcher.syncs, time.monotonic()
    time.sleep(3)
    assert watcher.syncs == syncs


def test_the_watcher_leaves_with_the_last_listener(
    bridge: BridgeServer, upstream: Dovecot, jmap: JmapClient
) -> None:
    jmap.mailboxes()
    first = Events(jmap, "types=*&closeafter=state&ping=0")
    second = Events(jmap, "types=*&closeafter=state&ping=0")
    watcher = _watcher(bridge, jmap.session["username"], _mode(upstream))
    jmap.call("Mailbox/set", {"create": {"n": {"name": "EndsBoth"}}})
    assert first.closed.wait(5) and second.closed.wait(5)
    watcher.join(timeout=5)
    assert bridge.bridge.watchers.get(jmap.session["username"]) is None


@pytest.fixture(scope="module")
def no_notify(
    dovecot_factory: Callable[..., Dovecot], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Dovecot, BridgeServer]]:
    upstream = dovecot_factory(hide=("NOTIFY",))
    with BridgeServer(upstream.host, upstream.port, tmp_path_factory.mktemp("no-notify")) as server:
        yield upstream, server


def test_without_notify_idle_watches_inbox_and_a_sweep_the_rest(
    no_notify: tuple[Dovecot, BridgeServer],
) -> None:
    upstream, server = no_notify
    jmap = server.client("alice", USERS["alice"])
    other = _imap(upstream, "alice", USERS["alice"])
    other.create_folder("Elsewhere")
    jmap.mailboxes()
    events = Events(jmap, "types=Email&closeafter=no&ping=0")
    _watcher(server, "alice", "idle")
    other.append("INBOX", MESSAGE)
    _, latency = _next_state(events, jmap.account_id, timeout=5)
    assert latency < 2, latency
    other.append("Elsewhere", MESSAGE)
    _, latency = _next_state(events, jmap.account_id, timeout=5)
    assert latency < 2, latency
    other.logout()
    jmap.close()


def test_a_watcher_cut_off_upstream_reconnects(
    no_notify: tuple[Dovecot, BridgeServer],
) -> None:
    upstream, server = no_notify
    jmap = server.client("bob", USERS["bob"])
    jmap.mailboxes()
    events = Events(jmap, "types=Email&closeafter=no&ping=0")
    first = _watcher(server, "bob", "idle")
    kick(upstream.config_path, "bob")
    other = _imap(upstream, "bob", USERS["bob"])
    other.append("INBOX", MESSAGE)
    _, latency = _next_state(events, jmap.account_id, timeout=8)
    assert latency < 5, latency
    assert server.bridge.watchers.get("bob") is first  # the same watcher, a new session
    other.logout()
    jmap.close()


def kick(config: Path, username: str) -> None:
    subprocess.run(["doveadm", "-c", str(config), "kick", username], check=True,
                   capture_output=True)  # fmt: skip


def test_email_delivery_is_pushed_for_new_mail_only(
    bridge: BridgeServer, upstream: Dovecot, jmap: JmapClient, other: IMAPClient
) -> None:
    other.append("INBOX", MESSAGE)
    jmap.mailboxes()
    emails = Events(jmap, "types=Email&closeafter=no&ping=0")
    deliveries = Events(jmap, "types=EmailDelivery&closeafter=no&ping=0")
    _watcher(bridge, jmap.session["username"], _mode(upstream))
    other.select_folder("INBOX")
    other.add_flags(other.search("ALL"), [b"\\Seen"])
    changed, _ = _next_state(emails, jmap.account_id, timeout=5)
    assert set(changed) == {"Email"}
    time.sleep(0.3)  # whatever the same publish sent the other stream has arrived
    assert deliveries.events.empty()  # a flag change adds no Email
    other.append("INBOX", MESSAGE)
    delivered, latency = _next_state(deliveries, jmap.account_id, timeout=5)
    assert set(delivered) == {"EmailDelivery"} and latency < 2


def test_a_new_password_brings_a_watcher_that_gave_up_back(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    upstream = dovecot_factory(users={"dora": "old-pw"})
    with BridgeServer(upstream.host, upstream.port, tmp_path) as server:
        old = server.client("dora", "old-pw")
        old.mailboxes()
        Events(old, "types=Email&closeafter=no&ping=0")
        first = _watcher(server, "dora", "notify")
        assert upstream.base_dir is not None
        passwd = upstream.base_dir / "passwd"
        passwd.write_text("dora:{PLAIN}new-pw::::::\n")
        later = passwd.stat().st_mtime + 10  # Dovecot rereads a passwd-file by its mtime
        os.utime(passwd, (later, later))
        time.sleep(1.1)
        kick(upstream.config_path, "dora")
        first.join(timeout=10)  # reconnecting, the old password is refused: it gives up
        assert not first.alive
        new = server.client("dora", "new-pw")
        new.mailboxes()
        events = Events(new, "types=Email&closeafter=no&ping=0")
        second = _watcher(server, "dora", "notify")
        assert second is not first and second.listeners == 2
        other = _imap(upstream, "dora", "new-pw")
        other.append("INBOX", MESSAGE)
        _next_state(events, new.account_id, timeout=5)
        other.logout()
        old.close()
        new.close()


def test_a_keepalive_during_idle_is_no_reason_to_sync(tmp_path: Path) -> None:
    """Dovecot says "* OK Still here" during IDLE now and then (here every second): the
    watcher hears that the server is there, and syncs only for news."""
    with (
        Dovecot(dict(USERS), idle_notify_interval=1) as upstream,
        BridgeServer(upstream.host, upstream.port, tmp_path / "data") as server,
    ):
        jmap = server.client("alice", USERS["alice"])
        jmap.mailboxes()
        events = Events(jmap, "types=Email&closeafter=no&ping=0")
        watcher = _watcher(server, "alice", "notify")
        syncs = watcher.syncs
        time.sleep(4)  # three keepalives at least
        assert watcher.syncs == syncs
        # Nor a reason to doubt the cache: requests still skip their own sync.
        assert server.bridge.users.get("alice").freshness.level_at_once()
        other = _imap(upstream, "alice", USERS["alice"])
        other.append("INBOX", MESSAGE)
        _, latency = _next_state(events, jmap.account_id, timeout=5)
        assert latency < 2, latency
        assert watcher.syncs > syncs
        other.logout()
        jmap.close()
