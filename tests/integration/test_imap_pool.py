"""ConnectionPool against a real Dovecot."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import ImapConnection, UpstreamConfig
from bridge.imap.errors import AuthFailed
from bridge.imap.pool import ConnectionPool
from tests.integration.conftest import USERS
from tests.integration.server import BridgeServer, established


class CountingOpener:
    """ImapConnection.open, counting the LOGINs it does."""

    def __init__(self) -> None:
        self.logins = 0
        self.lock = threading.Lock()

    def __call__(self, config: UpstreamConfig, username: str, password: str) -> ImapConnection:
        with self.lock:
            self.logins += 1
        return ImapConnection.open(config, username, password)


def make_pool(server: Dovecot, **kwargs: object) -> tuple[ConnectionPool, CountingOpener]:
    opener = CountingOpener()
    config = UpstreamConfig(server.host, server.port, tls="plain", timeout=10)
    return ConnectionPool(config, opener=opener, **kwargs), opener  # type: ignore[arg-type]


def test_reuse_costs_one_login(dovecot: Dovecot) -> None:
    pool, opener = make_pool(dovecot)
    pool.verify("bob", USERS["bob"])
    for _ in range(3):
        with pool.connection("bob", USERS["bob"]) as conn:
            conn.list_mailboxes()
    assert opener.logins == 1
    assert conn.commands.count("LOGIN") == 1
    pool.close_all()


def test_wrong_password_gets_nothing_and_changes_nothing(dovecot_login_failures: Dovecot) -> None:
    pool, opener = make_pool(dovecot_login_failures)
    with pool.connection("alice", USERS["alice"]) as pooled:
        pass
    with pytest.raises(AuthFailed), pool.connection("alice", "guess"):
        pytest.fail("lent a connection for a wrong password")
    assert pool.stats("alice") == (1, 1)
    with pool.connection("alice", USERS["alice"]) as conn:
        assert conn is pooled
        conn.noop()
    assert opener.logins == 2
    pool.close_all()


def test_a_killed_connection_is_replaced_transparently(dovecot: Dovecot) -> None:
    pool, opener = make_pool(dovecot)
    with pool.connection("bob", USERS["bob"]) as first:
        pass
    first._client.shutdown()
    with pool.connection("bob", USERS["bob"]) as second:
        assert second is not first
        second.noop()
    # A caller may condemn a connection itself: it is closed instead of pooled.
    with pool.connection("bob", USERS["bob"]) as condemned:
        assert condemned is second
        condemned.broken = True
    assert pool.stats("bob") == (0, 0)
    with pool.connection("bob", USERS["bob"]) as second:
        second.noop()
    # Half-closed from our side: the socket is still open, but the next read sees EOF.
    second._client.socket().shutdown(socket.SHUT_RDWR)
    with pool.connection("bob", USERS["bob"]) as third:
        assert third is not second
        third.list_mailboxes()
    assert opener.logins == 4
    assert pool.stats("bob") == (1, 1)
    pool.close_all()


def test_a_connection_kicked_by_the_server_is_replaced(dovecot: Dovecot) -> None:
    pool, opener = make_pool(dovecot)
    with pool.connection("bob", USERS["bob"]) as first:
        pass
    subprocess.run(
        ["doveadm", "-c", str(dovecot.config_path), "kick", "bob"],
        check=True,
        capture_output=True,
    )
    # The kicked session's BYE and close reach the socket a moment after doveadm returns.
    deadline = time.monotonic() + 5
    while not _readable(first) and time.monotonic() < deadline:
        time.sleep(0.01)
    with pool.connection("bob", USERS["bob"]) as second:
        assert second is not first
        second.noop()
    assert opener.logins == 2
    pool.close_all()


def test_selected_mailbox_renamed_elsewhere(dovecot: Dovecot, imap: IMAPClient) -> None:
    """Dovecot ends a session whose selected mailbox another session renames; the pool
    leaves the mailbox before lending the connection again, and replaces it if it died."""
    pool, opener = make_pool(dovecot)
    name = f"sel-{uuid.uuid4().hex[:8]}"
    imap.create_folder(name)
    with pool.connection("alice", USERS["alice"]) as first:
        first.select(name)
    imap.rename_folder(name, f"{name}-moved")
    with pool.connection("alice", USERS["alice"]) as second:
        assert second.selected is None
        second.list_mailboxes()
    # Leaving the mailbox in time even saved the session: Dovecot let UNSELECT through.
    assert second is first and opener.logins == 1
    # The same connection renaming its own selected mailbox survives it.
    with pool.connection("alice", USERS["alice"]) as conn:
        conn.select(f"{name}-moved")
        conn.rename(f"{name}-moved", name)
        conn.select(name)
        conn.delete(name)
        conn.noop()
        assert not conn.broken
    pool.close_all()


def test_new_password_upstream_replaces_old_connections(
    dovecot_factory: Callable[..., Dovecot],
) -> None:
    server = dovecot_factory(users={"carol": "old-pw"})
    pool, opener = make_pool(server)
    with pool.connection("carol", "old-pw") as old_lent:
        with pool.connection("carol", "old-pw") as old_idle:
            pass
        assert server.base_dir is not None
        passwd = server.base_dir / "passwd"
        passwd.write_text("carol:{PLAIN}brand-new-password::::::\n")
        # Dovecot looks at a passwd-file's mtime (whole seconds) at most once a second.
        later = passwd.stat().st_mtime + 10
        os.utime(passwd, (later, later))
        time.sleep(1.1)
        with pool.connection("carol", "brand-new-password") as fresh:
            fresh.noop()
        assert old_idle.broken  # closed as soon as the new password proved itself
    assert old_lent.broken  # closed on return instead of pooled
    assert pool.stats("carol") == (1, 1)
    with pytest.raises(AuthFailed):
        pool.verify("carol", "old-pw")
    assert opener.logins == 4
    pool.close_all()


def test_threads_share_the_open_limit(dovecot: Dovecot) -> None:
    pool, opener = make_pool(dovecot, max_open_per_user=3, max_idle_per_user=3)
    pool.verify("bob", USERS["bob"])
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(4):
                with pool.connection("bob", USERS["bob"]) as conn:
                    conn.list_mailboxes()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert opener.logins <= 3
    assert pool.stats("bob")[0] <= 3
    pool.close_all()
    assert pool.stats("bob") == (0, 0)


def _readable(connection: ImapConnection) -> bool:
    fd = connection._client.socket().fileno()
    return bool(select.select([fd], [], [], 0)[0])


def test_idle_connections_are_logged_out_without_further_requests(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    server = dovecot_factory()
    with BridgeServer(server.host, server.port, tmp_path, pool_idle_timeout=1.0) as bridge:
        for user in ("alice", "bob"):
            jmap = bridge.client(user, USERS[user])
            jmap.mailboxes()
            jmap.close()
        assert established(server.port) >= 2
        deadline = time.monotonic() + 5
        while established(server.port) > 0:
            assert time.monotonic() < deadline, "idle connections stayed open"
            time.sleep(0.1)
        assert bridge.bridge.pool.stats("alice") == (0, 0)
        # The next request logs in again as if nothing happened.
        jmap = bridge.client("alice", USERS["alice"])
        assert "INBOX" in jmap.mailboxes()
        jmap.close()
