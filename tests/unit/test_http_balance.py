"""Workers over one socket: the one with more kept-alive connections than another closes
one after an answer, now and then, and only while the gap is worth a move."""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Scope, Send

from bridge.http import balance
from bridge.http.balance import LoadBalance, WorkerLoads

API = "/jmap/api"


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def request(worker: LoadBalance, port: int, path: str = API) -> bool:
    """One request on the connection from ``port``: whether its answer closes it."""
    headers: list[tuple[bytes, bytes]] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers.extend(message["headers"])

    scope = {"type": "http", "path": path, "client": ("127.0.0.1", port)}
    asyncio.run(worker(scope, None, send))  # type: ignore[arg-type]
    return (b"connection", b"close") in headers


def pair() -> tuple[LoadBalance, LoadBalance]:
    loads = WorkerLoads(2)
    return LoadBalance(answer, loads, 0, API), LoadBalance(answer, loads, 1, API)


def connect(worker: LoadBalance, first_port: int, count: int) -> None:
    """``count`` connections that each sent a request, none of them closed."""
    margin = balance.MARGIN
    balance.MARGIN = 1_000_000
    try:
        assert not any(request(worker, first_port + n) for n in range(count))
    finally:
        balance.MARGIN = margin


def test_the_busier_worker_closes_connections_until_one_apart(monkeypatch) -> None:
    monkeypatch.setattr(balance, "WINDOW", 0.0)  # publish at every request
    monkeypatch.setattr(balance, "SHED_GAP", 0.0)
    busy, quiet = pair()
    connect(busy, 1000, 10)
    connect(quiet, 2000, 6)
    assert not request(quiet, 2000)
    # 10 against 6: each close takes one off the busy worker, down to one above.
    assert [request(busy, 1000 + n) for n in range(4)] == [True, True, True, False]
    assert (busy.load, quiet.load) == (7, 6)


def test_workers_one_apart_keep_their_connections(monkeypatch) -> None:
    monkeypatch.setattr(balance, "WINDOW", 0.0)
    monkeypatch.setattr(balance, "SHED_GAP", 0.0)
    one, other = pair()
    connect(one, 1000, 9)
    connect(other, 2000, 8)
    assert not any(request(one, 1000 + n) for n in range(9))


def test_closing_is_spaced_and_counts_only_api_requests(monkeypatch) -> None:
    monkeypatch.setattr(balance, "WINDOW", 0.0)
    busy, _idle = pair()
    closed = [request(busy, 1000 + port) for port in range(10)]
    assert sum(closed) == 1  # the idle worker is 0, but one close per SHED_GAP
    streams, _ = pair()
    assert not any(request(streams, 1000 + port, "/jmap/eventsource") for port in range(10))
    assert streams.load == 0
