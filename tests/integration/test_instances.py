"""Two bridge instances over one data directory, behind a real nginx (round-robin): what
README "Several instances" promises. Each instance is its own process; they agree through
the data directory (`--coordination data-dir`) or through a PostgreSQL database (a
throwaway cluster, `--coordination postgresql://...`), and every test runs with both. The
caches stay in the shared data directory either way. Commands on the wire are counted by
each instance's own /metrics."""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from imapclient import IMAPClient
from prometheus_client.parser import text_string_to_metric_families

from bridge.demo.dovecot import Dovecot
from bridge.demo.process import free_port
from tests.bench.harness import BridgeProcess
from tests.integration import test_coordination
from tests.integration.balancer import Nginx
from tests.integration.conftest import USERS
from tests.integration.push_receiver import Receiver
from tests.integration.server import USING, JmapClient
from tests.integration.test_push import Events, states
from tests.integration.test_push_subscription import verified

LEASE = 3.0
# The coordination store, the data directory's or a throwaway PostgreSQL's, as there.
cluster = test_coordination.cluster
where = test_coordination.where
USER = "alice"
MESSAGE = b"From: a@example.net\r\nSubject: from another client\r\n\r\nbody\r\n"


@dataclass
class Instance:
    process: BridgeProcess
    metrics_url: str

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    def client(self) -> JmapClient:
        return JmapClient(self.process.url, USER, USERS[USER])

    def commands(self) -> dict[str, float]:
        """IMAP commands this instance has sent, by command."""
        sent: dict[str, float] = {}
        text = httpx.get(self.metrics_url, timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "bridge_imap_commands_total":
                    command = sample.labels["command"]
                    sent[command] = sent.get(command, 0) + sample.value
        return sent


@dataclass
class Pair:
    a: Instance
    b: Instance
    nginx: Nginx
    data_dir: Path
    upstream: Dovecot
    coordination: str

    def watcher_holder(self) -> int | None:
        """The pid of the instance holding alice's watcher lease, from the shared store."""
        if self.coordination == "data-dir":
            with sqlite3.connect(self.data_dir / "coordination" / "coordination.sqlite3") as db:
                row = db.execute(
                    "SELECT holder FROM leases WHERE username = ? AND name = 'watcher'"
                    " AND expires > ?", (USER, time.time()),
                ).fetchone()  # fmt: skip
        else:
            with psycopg.connect(self.coordination) as db:
                row = db.execute(
                    "SELECT holder FROM coordination_leases WHERE username = %s"
                    " AND name = 'watcher' AND expires > extract(epoch FROM now())", (USER,),
                ).fetchone()  # fmt: skip
        return int(row[0].split("/")[1]) if row else None

    def other_client(self) -> IMAPClient:
        client = IMAPClient(self.upstream.host, port=self.upstream.port, ssl=False)
        client.login(USER, USERS[USER])
        return client


@pytest.fixture(scope="module")
def upstream(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    # Of its own: no other test's mail moves alice's mailbox while commands are counted.
    return dovecot_factory()


@pytest.fixture
def pair(upstream: Dovecot, where: str, tmp_path: Path) -> Iterator[Pair]:
    data_dir = tmp_path / "data"

    def instance(name: str) -> Instance:
        metrics = free_port()
        flags = ["--coordination", where, "--lease-time", str(LEASE),
                 "--metrics-port", str(metrics), "--push-allow-private"]  # fmt: skip
        process = BridgeProcess(upstream.port, data_dir, flags, log_path=tmp_path / f"{name}.log")
        return Instance(process, f"http://127.0.0.1:{metrics}/metrics")

    a, b = instance("a"), instance("b")
    with a.process, b.process, Nginx(tmp_path / "nginx", [a.process.port, b.process.port]) as nginx:
        yield Pair(a, b, nginx, data_dir, upstream, where)


def listen(jmap: JmapClient) -> Events:
    events = Events(jmap, "types=*&closeafter=no&ping=1")
    assert events.next()[0] == "ping"  # listening: what changes from now on is pushed
    return events


def next_state(events: Events, account_id: str, timeout: float = 5.0) -> dict[str, str]:
    ends = time.monotonic() + timeout
    while True:
        name, data, _ = events.next(timeout=max(0.01, ends - time.monotonic()))
        if name == "state":
            return states(data, account_id)


def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def draft(mailbox: str, tag: str) -> dict[str, Any]:
    return {
        "mailboxIds": {mailbox: True}, "subject": tag, "messageId": [f"{tag}@bridge.test"],
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "bodyValues": {"t": {"value": "draft"}},
    }  # fmt: skip


def balanced_call(
    http: httpx.Client, account: str, method: str, args: dict[str, Any]
) -> tuple[int, dict[str, Any], str]:
    """One call through nginx: the HTTP status, the call's answer, the instance that served."""
    body = {"using": USING, "methodCalls": [[method, {"accountId": account, **args}, "0"]]}
    response = http.post("/jmap/api", json=body)
    served = response.headers.get("x-upstream", "")
    if response.status_code != 200:
        return response.status_code, {}, served
    return 200, response.json()["methodResponses"][0][1], served


def test_a_write_through_a_is_seen_and_pushed_on_b(pair: Pair) -> None:
    via_a, via_b = pair.a.client(), pair.b.client()
    drafts = via_a.mailboxes()["Drafts"]["id"]
    since = via_b.call("Email/get", {"ids": []})["state"]
    events = listen(via_b)
    started = time.monotonic()
    result = via_a.call("Email/set", {"create": {"d": draft(drafts, "through-a")}})
    created = result["created"]["d"]["id"]
    pushed = next_state(events, via_b.account_id)
    latency = time.monotonic() - started
    assert pushed["Email"] == result["newState"]
    assert latency < 2, latency
    assert created in via_b.call("Email/changes", {"sinceState": since})["created"]
    # A token A issued opens B too (README "Bearer tokens"): the instances share them.
    token = via_a.http.post("/jmap/token").json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{pair.b.process.url}/jmap/session", headers=bearer).status_code == 200
    assert httpx.delete(f"{pair.b.process.url}/jmap/token", headers=bearer).status_code == 204
    assert httpx.get(f"{pair.a.process.url}/jmap/session", headers=bearer).status_code == 401

    # Round-robin: each request lands on the other instance, and sees the one before.
    balanced = httpx.Client(base_url=pair.nginx.url, auth=(USER, USERS[USER]), timeout=30)
    account = via_a.account_id
    served: list[str] = []
    state = via_a.call("Email/get", {"ids": []})["state"]
    for n in range(4):
        create = {"create": {"d": draft(drafts, f"balanced-{n}")}}
        _, result, upstream = balanced_call(balanced, account, "Email/set", create)
        served.append(upstream)
        _, changes, upstream = balanced_call(balanced, account, "Email/changes",
                                             {"sinceState": state})  # fmt: skip
        served.append(upstream)
        assert result["created"]["d"]["id"] in changes["created"], (n, changes)
        state = changes["newState"]
    assert len(set(served)) == 2
    assert all(one != next_one for one, next_one in itertools.pairwise(served))
    for client in (via_a, via_b):
        client.close()
    balanced.close()


def test_another_clients_change_is_synced_once(pair: Pair) -> None:
    via_a, via_b = pair.a.client(), pair.b.client()
    via_a.mailboxes()
    events_a = listen(via_a)
    wait_for(lambda: pair.watcher_holder() == pair.a.pid, timeout=5)
    events_b = listen(via_b)
    since = via_b.call("Email/get", {"ids": []})["state"]
    time.sleep(1.0)  # A's watcher has synced and listens (NOTIFY)
    before_a, before_b = pair.a.commands(), pair.b.commands()
    other = pair.other_client()
    other.append("INBOX", MESSAGE)
    assert next_state(events_a, via_a.account_id)["Email"] != since
    assert next_state(events_b, via_b.account_id)["Email"] != since
    time.sleep(0.5)
    after_a, after_b = pair.a.commands(), pair.b.commands()
    # A's watcher fetched the new message; B sent nothing at all: it heard of the change
    # from A through the shared store.
    assert after_a.get("UID FETCH", 0) > before_a.get("UID FETCH", 0)
    assert after_b == before_b
    # B serves the change from the cache A filled, on A's word that it is level: still
    # not one command upstream.
    changes = via_b.call("Email/changes", {"sinceState": since})
    assert len(changes["created"]) == 1
    assert pair.b.commands() == before_b
    other.logout()
    for client in (via_a, via_b):
        client.close()


def test_a_push_subscription_hears_each_state_once(pair: Pair) -> None:
    receiver = Receiver()
    via_a, via_b = pair.a.client(), pair.b.client()
    drafts = via_a.mailboxes()["Drafts"]["id"]
    verified(via_a, receiver)
    # B's first request for alice reads her subscriptions: both instances deliver now,
    # and both hear every change (their own, and the other's through the shared store).
    via_b.call("Email/get", {"ids": []})
    final = ""
    for n in range(4):
        writer = via_a if n % 2 else via_b
        final = writer.call("Email/set", {"create": {"d": draft(drafts, f"sub-{n}")}})["newState"]
    time.sleep(1.5)
    announced: list[tuple[str, str]] = []
    while not receiver.deliveries.empty():
        body = receiver.next().json()
        announced.extend(body["changed"][via_a.account_id].items())
    assert ("Email", final) in announced
    assert len(announced) == len(set(announced)), announced  # no state announced twice
    receiver.close()
    for client in (via_a, via_b):
        client.close()


def test_sigkill_during_ten_creates(pair: Pair) -> None:
    via_a, via_b = pair.a.client(), pair.b.client()
    drafts = via_a.mailboxes()["Drafts"]["id"]
    listen(via_a)
    wait_for(lambda: pair.watcher_holder() == pair.a.pid, timeout=5)
    events_b = listen(via_b)
    balanced = httpx.Client(base_url=pair.nginx.url, auth=(USER, USERS[USER]), timeout=30)
    account = via_a.account_id
    answers: dict[int, Any] = {}
    run = secrets.token_hex(4)  # the upstream outlives this test: its drafts are its own
    killed_at: list[float] = []

    def kill() -> None:
        killed_at.append(time.monotonic())
        assert pair.a.process.process is not None
        pair.a.process.process.send_signal(signal.SIGKILL)

    killer: threading.Timer | None = None
    for n in range(10):
        if n == 4:  # lands in the middle of a request, on A or B
            killer = threading.Timer(0.02, kill)
            killer.start()
        create = {"create": {"d": draft(drafts, f"kill-{run}-{n}")}}
        _, answers[n], _ = balanced_call(balanced, account, "Email/set", create)
    assert killer is not None
    killer.join()
    created = [n for n, answer in answers.items() if "d" in answer.get("created", {})]
    assert len(created) >= 8, answers  # at most the one cut short is lost
    other = pair.other_client()
    other.select_folder("Drafts", readonly=True)
    for n in range(10):
        found = other.search(["HEADER", "Message-ID", f"kill-{run}-{n}@bridge.test"])
        assert len(found) == (1 if n in created else len(found)) and len(found) <= 1, (n, found)

    # B takes over A's watcher once A's lease runs out, and pushes another client's change.
    taken = wait_for(lambda: pair.watcher_holder() == pair.b.pid, timeout=LEASE * 2)
    took = time.monotonic() - killed_at[0]
    assert took <= LEASE * 1.1 + 0.5, (took, taken)
    since = via_b.call("Email/get", {"ids": []})["state"]
    time.sleep(0.5)
    other.append("INBOX", MESSAGE)
    assert next_state(events_b, via_b.account_id)["Email"] != since
    other.logout()
    balanced.close()


def two_free_ports() -> int:
    """A port whose next one is free too (the second worker's /metrics)."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def counter(metrics_url: str, name: str, **labels: str) -> float:
    """The sum of a counter's samples at ``metrics_url`` that carry ``labels``."""
    text = httpx.get(metrics_url, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def requests_served(metrics_url: str) -> float:
    return counter(metrics_url, "bridge_http_requests_total", endpoint="api")


def worker_pids(server: BridgeProcess) -> list[int]:
    """The pids of a ``--workers 2`` bridge's workers, once both are forked (ready means
    one worker answers; the second may still be starting)."""
    assert server.process is not None
    workers = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    deadline = time.monotonic() + 10
    while len(workers.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = [int(pid) for pid in workers.read_text().split()]
    assert len(pids) == 2
    return pids


def test_workers_serve_one_socket_and_push_across(upstream: Dovecot, tmp_path: Path) -> None:
    metrics = two_free_ports()
    flags = ["--workers", "2", "--metrics-port", str(metrics), "--lease-time", str(LEASE)]
    server = BridgeProcess(upstream.port, tmp_path / "data", flags, log_path=tmp_path / "w.log")
    with server:
        worker_pids(server)
        listener = JmapClient(server.url, USER, USERS[USER])
        drafts = listener.mailboxes()["Drafts"]["id"]
        events = listen(listener)
        seen: list[str] = []
        served = [0.0, 0.0]
        # A connection of its own each time: the kernel hands each to either worker, but
        # not in turn (the one back in accept() first may win several in a row): at least
        # six, and on until both have answered.
        for n in range(40):
            create = {"create": {"d": draft(drafts, f"worker-{n}")}}
            with httpx.Client(base_url=server.url, auth=(USER, USERS[USER])) as http:
                _, result, _ = balanced_call(http, listener.account_id, "Email/set", create)
            pushed = next_state(events, listener.account_id)["Email"]
            while pushed != result["newState"]:
                pushed = next_state(events, listener.account_id)["Email"]
            seen.append(pushed)
            served = [requests_served(f"http://127.0.0.1:{port}/metrics") for port in
                      (metrics, metrics + 1)]  # fmt: skip
            if n >= 5 and all(served):
                break
        assert len(set(seen)) == len(seen)  # every create pushed, each its own state
        assert all(served), served  # both workers answered some of them
        listener.close()
        assert server.stop() == 0  # SIGTERM: every worker drained, the parent exits 0


def test_workers_even_out_kept_alive_connections(upstream: Dovecot, tmp_path: Path) -> None:
    """Clients that all connected while one worker was away (stopped here; in life: busy,
    or started later) do not all stay on the other: the loaded worker closes some of their
    connections after an answer, the clients reconnect, and the idle worker takes them."""
    metrics = two_free_ports()
    flags = ["--workers", "2", "--metrics-port", str(metrics)]
    server = BridgeProcess(upstream.port, tmp_path / "data", flags, log_path=tmp_path / "w.log")
    with server:
        pids = worker_pids(server)
        metrics_urls = [f"http://127.0.0.1:{port}/metrics" for port in (metrics, metrics + 1)]
        wait_for(lambda: all(_answers(url) for url in metrics_urls), timeout=10)
        # Which worker has which /metrics port is unknown: stop one, and see which answers.
        os.kill(pids[1], signal.SIGSTOP)
        try:
            awake = next(url for url in metrics_urls if _answers(url))
            # Three each for two users: within a user's maxConcurrentRequests (4).
            clients = [(httpx.Client(base_url=server.url, auth=(user, password), timeout=30),
                        JmapClient(server.url, user, password).account_id)
                       for user, password in USERS.items() for _ in range(3)]  # fmt: skip
            for http, account in clients:
                assert balanced_call(http, account, "Mailbox/get", {})[0] == 200
        finally:
            os.kill(pids[1], signal.SIGCONT)
        asleep = next(url for url in metrics_urls if url != awake)
        before = requests_served(asleep)
        ends = time.monotonic() + 4
        answers: list[int] = []

        def hammer(http: httpx.Client, account: str) -> None:
            while time.monotonic() < ends:
                answers.append(balanced_call(http, account, "Mailbox/get", {})[0])

        threads = [threading.Thread(target=hammer, args=client) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers and set(answers) == {200}  # no request lost to a closed connection
        assert requests_served(asleep) - before >= len(answers) / 10
        assert counter(awake, "bridge_http_connections_rebalanced_total") >= 1
        for http, _ in clients:
            http.close()
        assert server.stop() == 0


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except (httpx.TimeoutException, httpx.ConnectError):
        return False
    return True
