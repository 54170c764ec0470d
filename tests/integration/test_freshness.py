"""A request skips its sync while the user's watcher, notified by the upstream, vouches
for the cache (bridge.mail.freshness); another client's change is still seen."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import UpstreamConfig
from bridge.mail.account import UserData
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.test_push import Events
from tests.integration.test_sync import RecordingPool
from tests.integration.upstreams import Upstream, every_upstream

pytestmark = every_upstream

MESSAGE = b"From: a@example.com\r\nSubject: fresh %d\r\nMessage-ID: <f%d@example.com>\r\n\r\nx\r\n"


@pytest.fixture
def recorded(upstream: Upstream, tmp_path: Path) -> Iterator[tuple[BridgeServer, RecordingPool]]:
    pool = RecordingPool(UpstreamConfig(upstream.host, upstream.port, tls="plain"))
    with BridgeServer(upstream.host, upstream.port, tmp_path, pool=pool) as server:
        yield server, pool


def notified(upstream: Upstream) -> bool:
    """Whether bridge's watcher hears of every change (NOTIFY with CONDSTORE)."""
    return isinstance(upstream, Dovecot) and "CONDSTORE" not in upstream.hide_capabilities


def _watched(server: BridgeServer, username: str) -> UserData:
    """The user, once their watcher has synced since it started listening and stayed
    level for a second: the server may still report the tail of earlier work (Dovecot's
    index and cache updates), each report a sync during which no request is level."""
    user = server.bridge.users.get(username)
    deadline, level_since, syncs = time.monotonic() + 20, None, -1
    while time.monotonic() < deadline:
        watcher = server.bridge.watchers.get(username)
        settled = watcher is not None and watcher.syncs and watcher.mode is not None
        if settled and (watcher.mode == "idle" or user.freshness.level_at_once()):
            if level_since is None or watcher.syncs != syncs:
                level_since, syncs = time.monotonic(), watcher.syncs
            elif time.monotonic() - level_since >= 1:
                return user
        else:
            level_since = None
        time.sleep(0.02)
    raise AssertionError(f"no settled watcher for {username}: {_watcher_state(server, user)}")


def _watcher_state(server: BridgeServer, user: UserData) -> str:
    """What a failed wait saw last: enough to tell a stuck watcher from a restless one."""
    watcher = server.bridge.watchers.get(user.username)
    if watcher is None:
        return "no watcher"
    freshness = vars(user.freshness)
    thread = watcher._thread
    frame = sys._current_frames().get(thread.ident or -1)
    where = "".join(traceback.format_stack(frame)) if frame else "(not running)"
    return (f"mode={watcher.mode} syncs={watcher.syncs} holding={watcher.holding} "
            f"heard={freshness['_heard']} level_at={freshness['_level_at']} "
            f"notified={freshness['_notified']}; watcher thread at:\n{where}")  # fmt: skip


def _page(jmap: JmapClient, inbox: str) -> dict[str, Any]:
    responses = jmap.request([
        ["Mailbox/get", {"accountId": jmap.account_id, "ids": None}, "m"],
        ["Email/query", {"accountId": jmap.account_id, "filter": {"inMailbox": inbox},
                         "sort": [{"property": "receivedAt", "isAscending": False}],
                         "limit": 50}, "q"],
        ["Email/get", {"accountId": jmap.account_id, "properties": ["subject"],
                       "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "g"],
    ])  # fmt: skip
    return {call_id: args for _, args, call_id in responses}


def _inbox(jmap: JmapClient) -> str:
    return jmap.mailboxes()["INBOX"]["id"]


def test_a_warm_request_asks_the_upstream_nothing_while_notified(
    recorded: tuple[BridgeServer, RecordingPool],
    upstream: Upstream,
    account: tuple[str, str],
    other: IMAPClient,
) -> None:
    server, pool = recorded
    other.append("INBOX", MESSAGE % (1, 1))
    jmap = server.client(*account)
    inbox = _inbox(jmap)
    Events(jmap, "types=*&closeafter=no&ping=0")  # push listened for: a watcher runs
    _watched(server, account[0])
    # The watcher's own session (the one that sent NOTIFY) idles on: not the request's.
    before = {id(c): len(c.commands) for c in pool.opened}
    page = _page(jmap, inbox)
    sent = [name for c in pool.opened if "NOTIFY" not in c.commands
            for name in c.commands[before.get(id(c), 0) :]]  # fmt: skip
    assert [e["subject"] for e in page["g"]["list"]] == ["fresh 1"]
    if notified(upstream):
        assert sent == []
    else:
        # The watcher only polls here: requests keep asking (one LIST-STATUS, or LIST).
        assert "LIST" in sent
    jmap.close()


def test_another_clients_change_is_seen_by_the_next_request_before_any_push(
    bridge: BridgeServer, account: tuple[str, str], other: IMAPClient
) -> None:
    jmap = bridge.client(*account)
    inbox = _inbox(jmap)
    Events(jmap, "types=Email&closeafter=no&ping=0")
    user = _watched(bridge, account[0])
    # The watcher cannot sync (nor push) while the test holds the user's sync lock: the
    # request below finds the change itself, once the upstream has reported it.
    with user.sync_lock:
        other.append("INBOX", MESSAGE % (2, 2))
        deadline = time.monotonic() + 5
        while user.freshness.level() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not user.freshness.level()
    page = _page(jmap, inbox)
    assert [e["subject"] for e in page["g"]["list"]] == ["fresh 2"]
    jmap.close()
