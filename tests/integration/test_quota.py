"""RFC 9425 Quotas against the test Dovecot (quota plugin, "count" backend) and the test
Cyrus (the same limits, set when the user's INBOX is created).

The quota capability is a setting (upstream_quota: --upstream-quota, BRIDGE_UPSTREAM_QUOTA),
so these tests run a bridge of their own with it switched on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.cyrus import Cyrus
from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import ImapConnection, UpstreamConfig
from bridge.mail.capabilities import QUOTA
from tests.integration.conftest import USERS
from tests.integration.server import USING, BridgeServer, JmapClient
from tests.integration.upstreams import Upstream, every_upstream

QUOTA_USING = [*USING, QUOTA]
MESSAGE = b"From: a@example.com\r\nSubject: quota\r\n\r\n" + b"x" * 5000 + b"\r\n"


pytestmark = every_upstream


def root_name(upstream: Upstream) -> str:
    """What the server calls the user's quota root (Cyrus: the user's INBOX)."""
    return "INBOX" if isinstance(upstream, Cyrus) else "User quota"


@pytest.fixture(scope="module")
def quota_bridge(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeServer]:
    with BridgeServer(
        upstream.host, upstream.port, tmp_path_factory.mktemp("quota"), upstream_quota=True
    ) as server:
        yield server


@pytest.fixture
def client(quota_bridge: BridgeServer, account: tuple[str, str]) -> Iterator[JmapClient]:
    client = quota_bridge.client(*account)
    yield client
    client.close()


def quota_call(client: JmapClient, method: str, args: dict | None = None) -> dict:
    body = {"accountId": client.account_id, **(args or {})}
    [[name, result, _]] = client.request([[method, body, "q"]], using=QUOTA_USING)
    assert name == method, (name, result)
    return result


def by_type(result: dict) -> dict[str, dict]:
    return {quota["resourceType"]: quota for quota in result["list"]}


def test_capability_in_session(client: JmapClient) -> None:
    session = client.session
    assert session["capabilities"][QUOTA] == {}
    account = session["accounts"][client.account_id]
    assert account["accountCapabilities"][QUOTA] == {}
    assert session["primaryAccounts"][QUOTA] == client.account_id


def test_quota_get_follows_another_clients_append(
    client: JmapClient, other: IMAPClient, upstream: Upstream
) -> None:
    before = quota_call(client, "Quota/get", {"ids": None})
    quotas = by_type(before)
    assert set(quotas) == {"octets", "count"}
    octets, count = quotas["octets"], quotas["count"]
    assert octets["hardLimit"] == 10 * 1024**3  # the test servers' limit
    assert count["hardLimit"] == 1_000_000
    for quota in (octets, count):
        assert quota["name"] == root_name(upstream)
        assert quota["scope"] == "account"
        assert quota["types"] == ["Mail"]
        assert quota["warnLimit"] is None and quota["softLimit"] is None

    other.append("INBOX", MESSAGE)
    after = quota_call(client, "Quota/get", {"ids": None})
    moved = by_type(after)
    assert moved["count"]["used"] == count["used"] + 1
    assert moved["octets"]["used"] > octets["used"]
    assert moved["octets"]["used"] % 1024 == 0  # KiB from the upstream
    assert {q["id"] for q in after["list"]} == {q["id"] for q in before["list"]}
    assert after["state"] != before["state"]

    # /changes: nothing since the current state; an older one cannot be calculated.
    same = quota_call(client, "Quota/changes", {"sinceState": after["state"]})
    assert same["newState"] == after["state"]
    assert same["created"] == same["updated"] == same["destroyed"] == []
    [[name, error, _]] = client.request(
        [["Quota/changes", {"accountId": client.account_id, "sinceState": before["state"]}, "q"]],
        using=QUOTA_USING,
    )
    assert (name, error["type"]) == ("error", "cannotCalculateChanges")


def test_quota_get_by_ids_and_properties(client: JmapClient) -> None:
    everything = quota_call(client, "Quota/get", {"ids": None})
    count_id = by_type(everything)["count"]["id"]
    result = quota_call(client, "Quota/get", {"ids": [count_id, "nope"], "properties": ["used"]})
    assert result["list"] == [{"id": count_id, "used": by_type(everything)["count"]["used"]}]
    assert result["notFound"] == ["nope"]


def test_quota_query(client: JmapClient, upstream: Upstream) -> None:
    quotas = by_type(quota_call(client, "Quota/get", {"ids": None}))
    octets_id, count_id = quotas["octets"]["id"], quotas["count"]["id"]
    result = quota_call(
        client,
        "Quota/query",
        {"sort": [{"property": "used", "isAscending": False}], "calculateTotal": True},
    )
    assert result["total"] == 2 and set(result["ids"]) == {octets_id, count_id}
    result = quota_call(client, "Quota/query", {"filter": {"resourceType": "count"}})
    assert result["ids"] == [count_id]
    result = quota_call(
        client,
        "Quota/query",
        {"filter": {"name": root_name(upstream).lower(), "type": "Mail", "scope": "account"}},
    )
    assert set(result["ids"]) == {octets_id, count_id}
    assert quota_call(client, "Quota/query", {"filter": {"type": "Calendar"}})["ids"] == []
    paged = quota_call(client, "Quota/query", {"sort": [{"property": "name"}], "limit": 1})
    assert len(paged["ids"]) == 1 and paged["position"] == 0
    changes = quota_call(client, "Quota/queryChanges", {"sinceQueryState": paged["queryState"]})
    assert changes["added"] == [] and changes["removed"] == []
    [[name, error, _]] = client.request(
        [["Quota/query", {"accountId": client.account_id, "filter": {"size": 1}}, "q"]],
        using=QUOTA_USING,
    )
    assert (name, error["type"]) == ("error", "unsupportedFilter")


def test_quota_methods_run_without_the_capability_in_using(client: JmapClient) -> None:
    """lenient_using (the default; tests/integration/test_interop.py has the strict side)."""
    [[name, _, _]] = client.request(
        [["Quota/get", {"accountId": client.account_id, "ids": None}, "q"]]
    )
    assert name == "Quota/get"


def test_quota_roots_without_quota_capability(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    server = dovecot_factory(hide=("QUOTA",))
    config = UpstreamConfig(server.host, server.port, tls="plain", timeout=10.0)
    with ImapConnection.open(config, "alice", USERS["alice"]) as connection:
        assert not connection.has("QUOTA")
        assert connection.quota_roots("INBOX") == []
        assert "GETQUOTAROOT" not in connection.commands


def test_quota_roots_on_dovecot(dovecot: Dovecot) -> None:
    config = UpstreamConfig(dovecot.host, dovecot.port, tls="plain", timeout=10.0)
    with ImapConnection.open(config, "bob", USERS["bob"]) as connection:
        [root] = connection.quota_roots("INBOX")
        assert root.name == "User quota"
        assert {r.name: r.limit for r in root.resources} == {
            "STORAGE": 10 * 1024**2,
            "MESSAGE": 1_000_000,
        }
