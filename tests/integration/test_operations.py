"""What an operator sees: /metrics (on its own port) moving with JMAP calls, streams and
push deliveries, /healthz and /readyz following the upstream and the store, JSON log
lines, and a SIGTERM that lets a request in progress answer, ends event streams, logs out
upstream and exits 0 in time (1, still in time, when the upstream went silent)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge import metrics
from bridge.demo.dovecot import Dovecot
from bridge.http.drain import CLOSE_GRACE
from bridge.http.health import READY_TTL
from bridge.store.push_subscriptions import PushSubscriptionRecord
from bridge.webpush.sender import PushSender
from tests.bench.harness import BridgeProcess
from tests.integration.conftest import USERS
from tests.integration.push_receiver import Receiver
from tests.integration.server import USING, BridgeServer, JmapClient, free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> tuple[str, Samples]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(count for (sample, _), count in samples.items() if sample == name)


@pytest.fixture
def monitored(dovecot: Dovecot, tmp_path: Path) -> Iterator[tuple[BridgeServer, int]]:
    port = free_port()
    with BridgeServer(dovecot.host, dovecot.port, tmp_path / "data", metrics_port=port) as server:
        yield server, port


def test_metrics_move_as_clients_call(monitored: tuple[BridgeServer, int]) -> None:
    server, port = monitored
    jmap = server.client("alice", USERS["alice"])
    _, before = scrape(port)
    mailbox_get = ["Mailbox/get", {"accountId": jmap.account_id, "ids": None}, "0"]
    query = ["Email/query", {"accountId": jmap.account_id, "limit": 5}, "1"]
    made_up = ["Mailbox/alice-private-name", {"accountId": jmap.account_id}, "2"]
    wrong_account = ["Mailbox/get", {"accountId": "nobody", "ids": None}, "3"]
    responses = jmap.request([mailbox_get, query, made_up, wrong_account])
    assert [name for name, _, _ in responses] == ["Mailbox/get", "Email/query", "error", "error"]
    text, after = scrape(port)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    calls = "bridge_jmap_method_calls_total"
    assert moved(calls, method="Mailbox/get", result="ok") == 1
    assert moved(calls, method="Email/query", result="ok") == 1
    assert moved(calls, method="unknown", result="unknownMethod") == 1
    assert moved(calls, method="Mailbox/get", result="accountNotFound") == 1
    assert moved("bridge_jmap_method_duration_seconds_count", method="Mailbox/get") == 2
    assert moved("bridge_jmap_method_duration_seconds_sum", method="Email/query") > 0
    assert moved("bridge_http_requests_total", endpoint="api", status="200") == 1
    assert moved("bridge_http_request_duration_seconds_count", endpoint="api") == 1
    # The session fetch logged in: a connection opened, its commands counted and timed.
    assert moved("bridge_imap_connections_opened_total", result="ok") >= 1
    assert total(after, "bridge_imap_commands_total") > total(before, "bridge_imap_commands_total")
    assert value(after, "bridge_imap_command_duration_seconds_count", command="LIST") >= 1
    assert value(after, "bridge_imap_pool_connections", state="idle") >= 1
    assert value(after, "bridge_users_open") >= 1
    # Neither a client's made-up method name nor a username is a label value.
    assert "alice" not in text
    # The JMAP listener does not serve the figures.
    assert httpx.get(server.url + "/metrics").status_code == 404
    jmap.close()


def test_streams_and_watchers_are_gauged(monitored: tuple[BridgeServer, int]) -> None:
    server, port = monitored
    jmap = server.client("bob", USERS["bob"])
    url = jmap.session["eventSourceUrl"].split("?")[0] + "?types=*&closeafter=no&ping=1"
    with jmap.http.stream("GET", url) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()  # kept: a generator dropped closes the stream
        next(lines)
        _, open_ = scrape(port)
        assert value(open_, "bridge_event_streams") == 1
        assert value(open_, "bridge_watchers") == 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _, closed = scrape(port)
        if value(closed, "bridge_event_streams") == 0 and value(closed, "bridge_watchers") == 0:
            break
        time.sleep(0.1)
    assert value(closed, "bridge_event_streams") == 0
    assert value(closed, "bridge_watchers") == 0
    jmap.close()


def test_push_deliveries_are_counted_by_outcome() -> None:
    receiver = Receiver()
    receiver.script["/push"] = [201, 503, 410]
    record = PushSubscriptionRecord(
        id="s1", device_client_id="d", url=receiver.url(), expected_code="c",
        expires=int(time.time()) + 600,
    )  # fmt: skip
    registry = metrics.registry()

    def delivered(outcome: str) -> float:
        return registry.get_sample_value("bridge_push_deliveries_total", {"outcome": outcome}) or 0

    before = {outcome: delivered(outcome) for outcome in ("delivered", "retry", "gone")}

    async def post_three() -> None:
        sender = PushSender(allow_private=True)
        for _ in range(3):
            await sender.post(record, {"@type": "StateChange", "changed": {}})
        await sender.aclose()

    try:
        asyncio.run(post_three())
    finally:
        receiver.close()
    for outcome in ("delivered", "retry", "gone"):
        assert delivered(outcome) == before[outcome] + 1, outcome


def test_readyz_follows_the_upstream(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    upstream = dovecot_factory()
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data") as server:
        healthz = httpx.get(server.url + "/healthz")
        assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
        ready = httpx.get(server.url + "/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
        upstream.stop()
        # Within READY_TTL the last outcome is served: probes do not hammer the upstream.
        assert httpx.get(server.url + "/readyz").status_code == 200
        time.sleep(READY_TTL)
        down = httpx.get(server.url + "/readyz")
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        assert set(down.json()["failed"]) == {"upstream"}
        assert "refused" in down.json()["failed"]["upstream"]
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_readyz_names_a_store_it_cannot_write(dovecot: Dovecot, tmp_path: Path) -> None:
    not_a_directory = tmp_path / "data"
    not_a_directory.write_text("a file where the data directory should be")
    with BridgeServer(dovecot.host, dovecot.port, not_a_directory) as server:
        answer = httpx.get(server.url + "/readyz")
    assert answer.status_code == 503
    assert set(answer.json()["failed"]) == {"store"}


def test_json_log_lines(dovecot: Dovecot, tmp_path: Path) -> None:
    with BridgeProcess(dovecot.port, tmp_path / "data", ["--log-format", "json"], "info") as server:
        session = server.url + "/jmap/session"
        assert httpx.get(session, auth=("alice", USERS["alice"])).status_code == 200
        assert httpx.get(session, auth=("alice", "not-hers")).status_code == 401
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
    lines = server.read_log(tail=None).splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert entry["time"].endswith("Z")
    loggers = {entry["logger"] for entry in entries}
    assert "uvicorn.error" in loggers and "bridge.imap" in loggers
    [drain] = [entry for entry in entries if entry["message"].startswith("draining")]
    assert drain["level"] == "info" and isinstance(drain["connections"], int)  # an extra field
    assert USERS["alice"] not in "\n".join(lines) and "not-hers" not in "\n".join(lines)


class _Stream:
    """An EventSource read in a thread until it ends; whether it ended cleanly."""

    def __init__(self, jmap: JmapClient) -> None:
        self.url = jmap.session["eventSourceUrl"].split("?")[0] + "?types=*&closeafter=no&ping=1"
        self.http = jmap.http
        self.opened = threading.Event()
        self.ended_cleanly: bool | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            with self.http.stream("GET", self.url, timeout=60) as stream:
                for _ in stream.iter_lines():
                    self.opened.set()
            self.ended_cleanly = True
        except httpx.HTTPError:
            self.ended_cleanly = False


def _sessions(log: Path, user: str) -> tuple[int, int]:
    """(logins, sessions that ended with LOGOUT) of ``user`` in a Dovecot log."""
    text = log.read_text(errors="replace")
    logins = text.count(f"Login: user=<{user}>")
    logouts = sum(
        1 for line in text.splitlines() if f"imap({user})" in line and "Logged out" in line
    )
    return logins, logouts


def test_sigterm_drains_and_exits_zero(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    bound = 6.0
    upstream = dovecot_factory()
    log = upstream.base_dir / "dovecot.log"
    server = BridgeProcess(upstream.port, tmp_path / "data", ["--shutdown-timeout", str(bound)])
    server.start()
    answered: dict[str, Any] = {}
    try:
        jmap = JmapClient(server.url, "alice", USERS["alice"])
        get = ["Mailbox/get", {"accountId": jmap.account_id, "ids": None}, "0"]
        assert jmap.request([get])[0][0] == "Mailbox/get"
        stream = _Stream(jmap)
        assert stream.opened.wait(10)
        deadline = time.monotonic() + 10
        while _sessions(log, "alice")[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the watcher logs in beside the request's session
        assert _sessions(log, "alice")[0] == 2

        # A request held in progress: the upstream is stopped until after the SIGTERM.
        os.killpg(upstream.process.pid, signal.SIGSTOP)

        # A write always asks the upstream (a warm Mailbox/get may not, while the watcher
        # vouches for the cache).
        create = {"drain": {"name": "Drained"}}
        write = ["Mailbox/set", {"accountId": jmap.account_id, "create": create}, "1"]

        def slow_request() -> None:
            response = jmap.post({"using": USING, "methodCalls": [write]})
            answered["at"] = time.monotonic()
            answered["response"] = response

        requester = threading.Thread(target=slow_request)
        requester.start()
        time.sleep(0.5)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        os.killpg(upstream.process.pid, signal.SIGCONT)
        status = server.process.wait(timeout=bound + CLOSE_GRACE + 10)
        took = time.monotonic() - signalled
        requester.join(timeout=10)
        stream.thread.join(timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(upstream.process.pid, signal.SIGCONT)
        server.stop()

    assert status == 0
    assert took < bound + CLOSE_GRACE, took
    # The request was in progress at the SIGTERM, and answered.
    assert answered["at"] > signalled + 1.0
    assert answered["response"].status_code == 200
    [[name, result, _]] = answered["response"].json()["methodResponses"]
    assert name == "Mailbox/set" and "drain" in result["created"], result
    # The event stream ended as a response ends, not by a broken connection.
    assert stream.ended_cleanly is True
    # Both upstream sessions (the pooled one and the watcher's) said LOGOUT.
    deadline = time.monotonic() + 5
    while _sessions(log, "alice")[1] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # Dovecot writes a session's last line as its process ends
    assert _sessions(log, "alice") == (2, 2)


def test_a_silent_upstream_does_not_hold_the_exit_past_the_bound(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    bound = 2.0
    upstream = dovecot_factory()
    flags = ["--shutdown-timeout", str(bound), "--upstream-timeout", "60",
             "--request-timeout", "60"]  # fmt: skip
    server = BridgeProcess(upstream.port, tmp_path / "data", flags)
    server.start()
    try:
        jmap = JmapClient(server.url, "bob", USERS["bob"])
        get = ["Mailbox/get", {"accountId": jmap.account_id, "ids": None}, "0"]
        assert jmap.request([get])[0][0] == "Mailbox/get"
        os.killpg(upstream.process.pid, signal.SIGSTOP)

        def stuck_request() -> None:
            with contextlib.suppress(httpx.HTTPError):  # bridge leaves without answering
                jmap.post({"using": USING, "methodCalls": [get]})

        threading.Thread(target=stuck_request, daemon=True).start()
        time.sleep(0.5)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status = server.process.wait(timeout=bound + CLOSE_GRACE + 10)
        took = time.monotonic() - signalled
    finally:
        os.killpg(upstream.process.pid, signal.SIGCONT)
        server.stop()
    # Not a clean drain (a request's thread was left waiting): said with status 1.
    assert status == 1
    assert took < bound + CLOSE_GRACE + 1.0, took
