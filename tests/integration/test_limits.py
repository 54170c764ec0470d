"""Hostile sizes get the RFC's errors before any work is done: deep JSON over HTTP and the
WebSocket, and filters too big or too deep for the upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.integration.server import USING, JmapClient
from tests.integration.test_websocket import Socket, basic, ws_url

ERROR = "urn:ietf:params:jmap:error:"


def deep_echo(depth: int) -> bytes:
    nested = b"[" * depth + b"]" * depth
    return b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":' + (
        nested + b'},"0"]]}'
    )


@pytest.mark.parametrize("depth", [65, 10_000])
def test_deep_json_is_a_limit_problem(jmap: JmapClient, depth: int) -> None:
    response = jmap.post(deep_echo(depth), headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["type"] == ERROR + "limit"
    assert response.json()["limit"] == "maxJsonDepth"


@pytest.fixture
def socket(jmap: JmapClient, account: tuple[str, str]) -> Iterator[Socket]:
    with connect(ws_url(jmap), subprotocols=["jmap"], additional_headers=basic(account)) as ws:
        yield Socket(ws)


def test_deep_json_over_the_websocket_keeps_it_open(socket: Socket) -> None:
    socket.send(deep_echo(10_000).decode().replace('{"using"', '{"@type":"Request","using"', 1))
    error = socket.recv()
    assert (error["@type"], error["type"]) == ("RequestError", ERROR + "limit")
    again = socket.request([["Core/echo", {"still": "open"}, "e"]])
    assert again["methodResponses"][0][1] == {"still": "open"}


def nested_or(levels: int, leaf: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = leaf or {"text": "x"}
    for _ in range(levels):
        node = {"operator": "OR", "conditions": [node]}
    return node


@pytest.mark.parametrize(
    "filter_",
    [
        {"operator": "OR", "conditions": [{"text": f"word{n}"} for n in range(10_000)]},
        nested_or(25),
        {"text": "z" * 1_000_000},
    ],
    ids=["10,000 conditions", "25 levels", "1 MB of text"],
)
def test_a_filter_past_the_limits_is_refused_before_the_upstream(
    jmap: JmapClient, filter_: dict[str, Any]
) -> None:
    started = time.monotonic()
    result = jmap.call("Email/query", {"filter": filter_})
    assert result["error"]["type"] == "unsupportedFilter"
    assert time.monotonic() - started < 2.0
    # The connection was not dropped: the next query runs.
    assert "ids" in jmap.call("Email/query", {"filter": {"text": "word1"}})


def test_a_filter_within_the_limits_runs(jmap: JmapClient) -> None:
    filter_ = {"operator": "OR", "conditions": [{"subject": f"word{n}"} for n in range(100)]}
    assert "ids" in jmap.call("Email/query", {"filter": filter_})
    inbox = nested_or(8, {"role": "inbox"})
    [[name, result, _]] = jmap.request(
        [["Mailbox/query", {"accountId": jmap.account_id, "filter": inbox}, "q"]], using=USING
    )
    assert name == "Mailbox/query" and len(result["ids"]) == 1


def test_a_header_past_the_limit_is_too_large(jmap: JmapClient) -> None:
    drafts = jmap.mailboxes()["Drafts"]["id"]

    def draft(fields: int) -> dict[str, Any]:
        # Each field passes the per-value limit (16 KB); only their sum can be too large.
        filler = {f"header:X-Filler-{n}:asText": "s " * 5_000 for n in range(fields)}
        return {"mailboxIds": {drafts: True}, "subject": "many fields",
                "textBody": [{"partId": "1", "type": "text/plain"}],
                "bodyValues": {"1": {"value": "body"}}, **filler}  # fmt: skip

    # 12 fields of 10,000 octets pass the 102,400-octet header section; 5 fit.
    result = jmap.call("Email/set", {"create": {"big": draft(12), "fits": draft(5)}})
    assert result["notCreated"]["big"]["type"] == "tooLarge"
    created = result["created"]["fits"]["id"]
    assert jmap.call("Email/set", {"destroy": [created]})["destroyed"] == [created]
