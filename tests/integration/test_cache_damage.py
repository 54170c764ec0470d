"""A damaged cache costs a client one serverFail at most, never an HTTP 500: bridge moves
the file aside, rebuilds from the upstream, and old states answer cannotCalculateChanges."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import httpx
import pytest

from bridge.demo.dovecot import Dovecot
from tests.integration.conftest import USERS
from tests.integration.server import USING, BridgeServer, JmapClient
from tests.unit.test_store_health import DAMAGE, PAGE

# Damage of the SQLite store's files; the PostgreSQL store's counterpart (a database out of
# reach) is in test_store_postgres.py.
pytestmark = pytest.mark.sqlite_only


def cache_file(data_dir: Path, username: str) -> Path:
    digest = hashlib.sha256(username.encode()).hexdigest()[:32]
    return data_dir / "users" / digest / "cache.sqlite3"


def calls(jmap: JmapClient, state: str) -> httpx.Response:
    """Core/echo, Mailbox/get and Mailbox/changes from ``state`` in one request."""
    account = jmap.account_id
    return jmap.post({"using": USING, "methodCalls": [
        ["Core/echo", {"ok": True}, "e"],
        ["Mailbox/get", {"accountId": account, "ids": None}, "g"],
        ["Mailbox/changes", {"accountId": account, "sinceState": state}, "c"],
    ]})  # fmt: skip


def first_state(server: BridgeServer) -> str:
    jmap = server.client("alice", USERS["alice"])
    state = jmap.call("Mailbox/get", {"ids": None})["state"]
    jmap.close()
    return state


def assert_rebuilt(server: BridgeServer, old_state: str) -> None:
    jmap = server.client("alice", USERS["alice"])
    response = calls(jmap, old_state)
    assert response.status_code == 200, response.text
    [echo, get, changes] = response.json()["methodResponses"]
    assert echo[1] == {"ok": True}
    assert "INBOX" in {m["name"] for m in get[1]["list"]}
    assert get[1]["state"].split("-")[0] != old_state.split("-")[0]  # a new epoch
    assert changes[0] == "error" and changes[1]["type"] == "cannotCalculateChanges"
    jmap.close()


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_cache_damaged_while_stopped_is_rebuilt_at_restart(
    dovecot: Dovecot, tmp_path: Path, damage: str
) -> None:
    data = tmp_path / "data"
    with BridgeServer(dovecot.host, dovecot.port, data) as server:
        old_state = first_state(server)
    DAMAGE[damage](cache_file(data, "alice"))
    with BridgeServer(dovecot.host, dovecot.port, data) as server:
        assert_rebuilt(server, old_state)
    kept = [p.name for p in cache_file(data, "alice").parent.iterdir() if ".broken-" in p.name]
    assert len(kept) == (0 if damage == "truncated to 0" else 1)


def test_damage_met_while_running_is_one_server_fail(dovecot: Dovecot, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with BridgeServer(dovecot.host, dovecot.port, data) as server:
        old_state = first_state(server)
        cache = server.bridge.users.get("alice").cache
        with cache.sql() as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file
            [root] = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'mailboxes'")
        with cache_file(data, "alice").open("r+b") as file:
            file.seek((root[0] - 1) * PAGE)
            file.write(b"\xa5" * PAGE)
        with cache.sql() as conn:
            conn.execute("PRAGMA shrink_memory")  # as memory pressure would: read the disk
        jmap = server.client("alice", USERS["alice"])
        response = calls(jmap, old_state)
        assert response.status_code == 200, response.text
        [echo, get, _] = response.json()["methodResponses"]
        assert echo[1] == {"ok": True}
        assert (get[0], get[1]["type"]) == ("error", "serverFail")
        jmap.close()
        assert_rebuilt(server, old_state)


def test_a_write_ahead_log_deleted_while_running_loses_nothing(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    path = cache_file(data, "alice")
    with BridgeServer(dovecot.host, dovecot.port, data) as server:
        old_state = first_state(server)
        path.with_name(path.name + "-wal").unlink()
        jmap = server.client("alice", USERS["alice"])
        name = f"Wal{hashlib.sha1(str(tmp_path).encode()).hexdigest()[:8]}"
        assert "created" in jmap.call("Mailbox/set", {"create": {"n": {"name": name}}})
        jmap.close()
    with BridgeServer(dovecot.host, dovecot.port, data) as server:
        jmap = server.client("alice", USERS["alice"])
        changes = jmap.call("Mailbox/changes", {"sinceState": old_state})
        assert "error" not in changes and len(changes["created"]) == 1
        mailbox = changes["created"][0]
        assert "destroyed" in jmap.call("Mailbox/set", {"destroy": [mailbox]})
        jmap.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
