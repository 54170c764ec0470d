"""ConnectionPool with a fake opener: reuse, passwords, limits, dead connections, threads."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest

from bridge.imap import pool as pool_module
from bridge.imap.connection import ImapConnection, UpstreamConfig
from bridge.imap.errors import AuthFailed, CommandFailed, UpstreamUnavailable
from bridge.imap.pool import ConnectionPool

CONFIG = UpstreamConfig("127.0.0.1", 143, tls="plain", timeout=1.0)


class FakeConnection:
    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.broken = False
        self.closed = False
        self.alive = True
        self.probes: list[bool] = []
        self.selected: str | None = None
        self.unselects = 0

    def unselect(self) -> None:
        self.unselects += 1
        if not self.alive:
            raise UpstreamUnavailable("BYE")
        self.selected = None

    def is_alive(self, *, probe: bool = False) -> bool:
        self.probes.append(probe)
        return self.alive and not self.broken

    def close(self) -> None:
        self.closed = True
        self.broken = True


class Upstream:
    """The fake server's password table, and every connection it let in."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords
        self.opened: list[FakeConnection] = []
        self.attempts = 0
        self.delay = 0.0
        self.down = False
        self.lock = threading.Lock()

    def open(self, config: UpstreamConfig, username: str, password: str) -> ImapConnection:
        with self.lock:
            self.attempts += 1
        time.sleep(self.delay)
        if self.down:
            raise UpstreamUnavailable("down")
        if self.passwords.get(username) != password:
            raise AuthFailed("AUTHENTICATIONFAILED")
        connection = FakeConnection(username, password)
        with self.lock:
            self.opened.append(connection)
        return cast(ImapConnection, connection)


def make_pool(upstream: Upstream, **kwargs: Any) -> ConnectionPool:
    return ConnectionPool(CONFIG, opener=upstream.open, **kwargs)


@pytest.fixture
def upstream() -> Upstream:
    return Upstream({"alice": "right", "bob": "bobs"})


def test_reuses_an_idle_connection(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    with pool.connection("alice", "right") as first:
        pass
    with pool.connection("alice", "right") as second:
        assert second is first
    assert len(upstream.opened) == 1
    assert pool.stats("alice") == (1, 1)


def test_users_do_not_share(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    with pool.connection("alice", "right") as alice:
        pass
    with pool.connection("bob", "bobs") as bob:
        assert bob is not alice


def test_wrong_password_never_gets_a_pooled_connection(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    with pool.connection("alice", "right") as pooled:
        pass
    with pytest.raises(AuthFailed), pool.connection("alice", "wrong"):
        pytest.fail("a wrong password must not be lent a connection")
    assert not cast(FakeConnection, pooled).closed
    assert pool.stats("alice") == (1, 1)
    with pool.connection("alice", "right") as again:
        assert again is pooled
    assert upstream.attempts == 2


def test_verify(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    pool.verify("alice", "right")
    pool.verify("alice", "right")  # the HMAC check: no second LOGIN
    assert upstream.attempts == 1
    with pytest.raises(AuthFailed):
        pool.verify("alice", "wrong")
    with pytest.raises(AuthFailed):
        pool.verify("nobody", "x")
    assert pool.stats("alice") == (1, 1)


def test_password_changed_upstream(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    with pool.connection("alice", "right") as old_lent:
        with pool.connection("alice", "right") as old_idle:
            pass
        upstream.passwords["alice"] = "new"
        # The new password must LOGIN itself; that succeeding retires the old connections.
        with pool.connection("alice", "new") as fresh:
            assert fresh is not old_idle and fresh is not old_lent
            assert cast(FakeConnection, old_idle).closed
    assert cast(FakeConnection, old_lent).closed  # closed on return, not pooled
    with pool.connection("alice", "new") as again:
        assert again is fresh
    # The old password is no longer trusted: it must LOGIN, and that now fails.
    with pytest.raises(AuthFailed), pool.connection("alice", "right"):
        pass
    assert not cast(FakeConnection, fresh).closed


def test_stale_trust_is_checked_with_a_new_login(upstream: Upstream) -> None:
    pool = make_pool(upstream, verify_ttl=0.05)
    pool.verify("alice", "right")
    time.sleep(0.1)
    upstream.passwords["alice"] = "changed"
    with pytest.raises(AuthFailed):
        pool.verify("alice", "right")
    assert upstream.attempts == 2


def test_a_trusted_password_rejected_on_reconnect_forgets_the_trust(upstream: Upstream) -> None:
    pool = make_pool(upstream, max_idle_per_user=0)
    pool.verify("alice", "right")  # opened, then closed: no idle kept
    upstream.passwords["alice"] = "changed"
    pool.verify("alice", "right")  # still trusted: no LOGIN
    assert upstream.attempts == 1
    with pytest.raises(AuthFailed), pool.connection("alice", "right"):
        pass  # a new connection is needed, and its LOGIN fails
    with pytest.raises(AuthFailed):
        pool.verify("alice", "right")  # trust is gone: LOGIN again
    assert upstream.attempts == 3


def test_unavailable_connections_are_discarded(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    with pytest.raises(UpstreamUnavailable), pool.connection("alice", "right") as first:
        raise UpstreamUnavailable("socket closed")
    assert cast(FakeConnection, first).closed
    with pool.connection("alice", "right") as broken:
        cast(FakeConnection, broken).broken = True
    with pool.connection("alice", "right") as third:
        assert third is not first and third is not broken
    assert pool.stats("alice") == (1, 1)


def test_other_errors_keep_the_connection(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    with pytest.raises(CommandFailed), pool.connection("alice", "right") as first:
        raise CommandFailed("SELECT", "NO", "NONEXISTENT", "no such mailbox")
    with pool.connection("alice", "right") as second:
        assert second is first


def test_dead_idle_connection_is_replaced_transparently(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    with pool.connection("alice", "right") as first:
        pass
    cast(FakeConnection, first).alive = False
    with pool.connection("alice", "right") as second:
        assert second is not first
    assert cast(FakeConnection, first).closed
    assert pool.stats("alice") == (1, 1)


def test_long_idle_connections_get_a_noop(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "NOOP_AFTER", 0.05)
    pool = make_pool(upstream)
    with pool.connection("alice", "right") as first:
        pass
    with pool.connection("alice", "right"):
        pass
    time.sleep(0.1)
    with pool.connection("alice", "right"):
        pass
    assert cast(FakeConnection, first).probes == [False, True]


def test_expired_idle_connections_are_closed(upstream: Upstream) -> None:
    pool = make_pool(upstream, idle_timeout=0.05, verify_ttl=10)
    with pool.connection("alice", "right") as first:
        pass
    time.sleep(0.1)
    with pool.connection("alice", "right") as second:
        assert second is not first
    assert cast(FakeConnection, first).closed


def test_idle_limit(upstream: Upstream) -> None:
    pool = make_pool(upstream, max_idle_per_user=1, max_open_per_user=3)
    with pool.connection("alice", "right") as a, pool.connection("alice", "right") as b:
        assert a is not b
    assert pool.stats("alice") == (1, 1)
    assert cast(FakeConnection, b).closed != cast(FakeConnection, a).closed


def test_open_limit_waits_then_times_out(upstream: Upstream) -> None:
    pool = make_pool(upstream, max_open_per_user=1, wait_timeout=0.2)
    with pool.connection("alice", "right"):
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable), pool.connection("alice", "right"):
            pass
        assert time.monotonic() - started >= 0.2
        # Another user is not held up by alice's limit.
        with pool.connection("bob", "bobs"):
            pass


def test_open_limit_across_threads(upstream: Upstream) -> None:
    upstream.delay = 0.01
    pool = make_pool(upstream, max_open_per_user=3, max_idle_per_user=3, wait_timeout=5)
    pool.verify("alice", "right")
    in_use = 0
    peak = 0
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        nonlocal in_use, peak
        try:
            for _ in range(5):
                with pool.connection("alice", "right"):
                    with lock:
                        in_use += 1
                        peak = max(peak, in_use)
                    time.sleep(0.005)
                    with lock:
                        in_use -= 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert peak == 3
    assert len(upstream.opened) <= 3
    assert pool.stats("alice")[0] <= 3


def test_a_wrong_guess_needs_no_free_slot(upstream: Upstream) -> None:
    pool = make_pool(upstream, max_open_per_user=1, wait_timeout=0.2)
    with pool.connection("alice", "right") as lent:
        with pytest.raises(AuthFailed):
            pool.verify("alice", "wrong")  # at the limit, and still answered at once
        assert not cast(FakeConnection, lent).closed
    assert pool.stats("alice") == (1, 1)


def test_upstream_down_leaves_no_slot_taken(upstream: Upstream) -> None:
    pool = make_pool(upstream, max_open_per_user=1, wait_timeout=0.1)
    upstream.down = True
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            pool.verify("alice", "right")
    upstream.down = False
    pool.verify("alice", "right")
    assert pool.stats("alice") == (1, 1)


def test_close_all(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    with pool.connection("alice", "right") as lent:
        with pool.connection("alice", "right") as idle:
            pass
        pool.close_all()
        assert cast(FakeConnection, idle).closed
        assert not cast(FakeConnection, lent).closed
    assert cast(FakeConnection, lent).closed
    assert pool.stats("alice") == (0, 0)
    pool.verify("alice", "right")  # trust was forgotten: a new LOGIN
    assert upstream.attempts == 3


def test_the_password_is_not_kept(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    pool.verify("alice", "right")
    state = repr(pool) + repr(pool._users) + repr(vars(pool))
    assert "right" not in state
    assert all("right" not in repr(vars(user)) for user in pool._users.values())


def test_a_connection_left_in_a_mailbox_is_unselected_before_reuse(upstream: Upstream) -> None:
    pool = make_pool(upstream)
    with pool.connection("alice", "right") as first:
        cast(FakeConnection, first).selected = "Archive"
    with pool.connection("alice", "right") as second:
        assert second is first and second.selected is None
    assert cast(FakeConnection, first).unselects == 1
    cast(FakeConnection, first).selected = "Archive"
    cast(FakeConnection, first).alive = False  # the server ended the session meanwhile
    with pool.connection("alice", "right") as third:
        assert third is not first
    assert cast(FakeConnection, first).closed


def test_the_connection_with_inbox_open_is_lent_first(upstream: Upstream) -> None:
    """A request that worked in another folder on a second connection gives it back last;
    the next request still gets the one with INBOX open (its sync asks it what changed),
    and its own second connection the other one."""
    pool = make_pool(upstream)
    borrowed = pool.connection("alice", "right"), pool.connection("alice", "right")
    first, second = (borrowing.__enter__() for borrowing in borrowed)
    cast(FakeConnection, first).selected = "INBOX"
    cast(FakeConnection, second).selected = "Archive"
    for borrowing in borrowed:  # the one with INBOX open back first, the other last
        borrowing.__exit__(None, None, None)
    with pool.connection("alice", "right") as again:
        assert again is first and again.selected == "INBOX"
        with pool.connection("alice", "right", for_inbox=False) as other:
            assert other is second and other.selected is None  # unselected on the way


def test_a_user_taken_out_by_the_reaper_borrows_again_from_a_new_entry(
    upstream: Upstream,
) -> None:
    pool = make_pool(upstream, idle_timeout=0.05, verify_ttl=0.05)
    with pool.connection("alice", "right"):
        pass
    entry = pool._users["alice"]
    time.sleep(0.1)
    expired = pool._reap()  # the idle connection, and then the user, are out
    assert len(expired) == 1 and "alice" not in pool._users and entry.gone
    with pool.connection("alice", "right"):
        assert pool.stats("alice") == (1, 0)
    assert pool.stats("alice") == (1, 1)
    assert pool._users["alice"] is not entry
