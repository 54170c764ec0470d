"""B5 throughput: many users at once, bridge and raw IMAP side by side.

``python -m tests.bench.throughput [--users 16] [--messages 2000] [--seconds 20] [--workers 1 2]``

One Dovecot, ``--users`` users with an INBOX of ``--messages`` messages each, bridge as its
own process. For each N in ``--clients`` (1, 4, 16) N client PROCESSES (so a client never
competes for bridge's GIL, nor bridge's for theirs) each take one user and repeat the warm
list view for ``--seconds``: POST [Mailbox/get, Email/query of the newest 50 in INBOX,
Email/get of their list properties] on a keep-alive connection. The raw side runs N
processes too, each a logged-in imapclient doing what a plain client does for the same
view: LIST, SELECT INBOX (read-only), UID SORT (REVERSE ARRIVAL), UID FETCH of 50, UNSELECT.
Per N and side: requests per second, p50 and p99 latency, and for bridge its process CPU
time (user + system, every thread) divided by the requests served. Every answer is
checked (50 ids, 50 emails); an error fails the run. Prints a markdown table.

``--rounds R`` measures every side and N R times, the order of the sides reversed every
other round, and prints medians (req/s with its range): on a shared machine the load moves
between rows, and interleaving spreads it over the sides alike. ``--against DIR`` adds a
second bridge, run from another revision's tree (``git archive main | tar -x -C DIR``), as
side ``against``: before and after a change, under the same load.

``--workers 1 2`` runs a bridge of each worker count (``bridge serve --workers N``, each
over a data directory of its own), all started and warmed first; each N then measures
them one after the other beside raw IMAP. A bridge's CPU time is that of its whole process
tree (the supervisor and its workers).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
import msgspec
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import (
    RAW_LIST_ITEMS,
    USING,
    BridgeProcess,
    Jmap,
    check,
    ms,
    progress,
)
from tests.bench.scenarios import PAGE, first_page_calls, inbox_of, seed_account

CLIENT_COUNTS = (1, 4, 16)
TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu_seconds(pid: int) -> float:
    """``process_cpu_seconds`` of a process and of its children (bridge's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return process_cpu_seconds(pid) + sum(tree_cpu_seconds(int(child)) for child in children)


def tree_threads(pid: int) -> list[int]:
    """Every thread of a process and of its children."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    own = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    return own + [thread for child in children for thread in tree_threads(int(child))]


def machine_busy_seconds() -> float:
    """CPU time every CPU of the machine spent on anything but idling, so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICKS


@dataclass(frozen=True)
class Target:
    """What a client process needs to reach its side."""

    side: str  # "bridge" or "raw"
    url: str  # bridge's URL
    label: str  # the row's name: the side, and a bridge's worker count
    imap_port: int
    user: str
    password: str
    push: bool = False  # keep an EventSource open, as a webmail does: a watcher runs


def _listen(url: str, user: str, password: str) -> None:
    """Hold an EventSource stream open (in a daemon thread) for the process's life."""

    def read() -> None:
        with httpx.Client(base_url=url, auth=(user, password), timeout=None) as http:
            query = "/jmap/eventsource?types=*&closeafter=no&ping=0"
            with http.stream("GET", query) as response:
                for _ in response.iter_lines():
                    pass

    threading.Thread(target=read, daemon=True).start()


def _bridge_client(target: Target) -> tuple[Callable[[], None], Callable[[], None]]:
    """The page, and how to drop its connection."""
    jmap = Jmap(target.url, target.user, target.password)
    jmap.session()
    calls = first_page_calls(jmap.account_id or "", inbox_of(jmap))
    if target.push:
        _listen(target.url, target.user, target.password)
        time.sleep(1)  # the watcher's NOTIFY and first sync

    jmap.close()
    # http.client and msgspec rather than httpx: the client's own CPU time per request is
    # a fraction, and the clients share the machine's CPUs with bridge.
    host, port = target.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    credentials = base64.b64encode(f"{target.user}:{target.password}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}", "Content-Type": "application/json"}
    body = msgspec.json.encode({"using": USING, "methodCalls": calls})

    def page() -> None:
        try:
            connection.request("POST", "/jmap/api", body, headers)
            response = connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # bridge closed the connection while the other clients got ready (uvicorn's
            # keep-alive timeout is 5 s): once more on a new one.
            connection.close()
            connection.request("POST", "/jmap/api", body, headers)
            response = connection.getresponse()
        data = response.read()
        check(response.status == 200, f"api: {response.status} {data[:300]!r}")
        answers = {call_id: args for _, args, call_id in
                   msgspec.json.decode(data)["methodResponses"]}  # fmt: skip
        check(len(answers["q"]["ids"]) == PAGE, "short query page")
        check(len(answers["g"]["list"]) == PAGE, f"short Email/get page: {answers['g']}")

    return page, connection.close


def _raw_client(target: Target) -> tuple[Callable[[], None], Callable[[], None]]:
    client = IMAPClient("127.0.0.1", port=target.imap_port, ssl=False, timeout=60)
    client.login(target.user, target.password)

    def page() -> None:
        client.list_folders()
        client.select_folder("INBOX", readonly=True)
        uids = client.sort(["REVERSE ARRIVAL"])[:PAGE]
        fetched = client.fetch(uids, RAW_LIST_ITEMS)
        client.unselect_folder()
        check(len(fetched) == PAGE, "short raw FETCH")

    return page, lambda: None  # IMAP servers keep an idle session for 30 minutes


def client_main(target: Target, ready: Any, go: Event, seconds: float, results: Any) -> None:
    """One client process: warm up, wait for the start, repeat the page, send latencies."""
    try:
        page, reconnect = (_bridge_client if target.side == "bridge" else _raw_client)(target)
        page()  # warm: connection open, caches filled
        ready.put(None)
        go.wait()
        # uvicorn closes a kept-alive connection idle for 5 s, as this one may have been
        # while the other clients started: the timed requests begin on a new one (http.client
        # connects again by itself).
        reconnect()
        latencies: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            page()
            latencies.append(time.perf_counter() - started)
        results.put(("ok", latencies))
    except Exception as exc:  # reported to the parent, which fails the run
        ready.put(None)
        results.put(("error", repr(exc)))


@dataclass
class Round:
    side: str
    clients: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float | None
    machine_seconds: float

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]

    @property
    def cpu_per_request(self) -> float | None:
        return None if self.cpu_seconds is None else self.cpu_seconds / self.requests


def run_round(targets: list[Target], seconds: float, cpu_of: int | None) -> Round:
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    go = context.Event()
    processes = [
        context.Process(target=client_main, args=(t, ready, go, seconds, results)) for t in targets
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=300)
    cpu_before = tree_cpu_seconds(cpu_of) if cpu_of else 0.0
    machine_before = machine_busy_seconds()
    started = time.monotonic()
    go.set()
    outcomes = [results.get(timeout=seconds + 300) for _ in processes]
    ran = time.monotonic() - started
    cpu = tree_cpu_seconds(cpu_of) - cpu_before if cpu_of else None
    machine = machine_busy_seconds() - machine_before
    for process in processes:
        process.join()
    errors = [detail for kind, detail in outcomes if kind == "error"]
    check(not errors, f"{targets[0].side} clients failed: {errors[:3]}")
    latencies = [value for _, values in outcomes for value in values]
    # The clients stop at their own deadline; the last request may run over it.
    return Round(targets[0].label, len(targets), max(ran, seconds), latencies, cpu, machine)


@dataclass(frozen=True)
class Row:
    """The medians of one side's rounds at one N."""

    side: str
    clients: int
    per_second: float
    spread: tuple[float, float]  # lowest and highest req/s of the rounds
    p50: float
    p99: float
    cpu_per_request: float | None
    machine_per_request: float

    @classmethod
    def of(cls, rounds: list[Round]) -> Row:
        cpus = [r.cpu_per_request for r in rounds if r.cpu_per_request is not None]
        rates = [r.per_second for r in rounds]
        return cls(
            rounds[0].side, rounds[0].clients, statistics.median(rates),
            (min(rates), max(rates)),
            statistics.median(r.percentile(0.5) for r in rounds),
            statistics.median(r.percentile(0.99) for r in rounds),
            statistics.median(cpus) if cpus else None,
            statistics.median(r.machine_seconds / r.requests for r in rounds),
        )  # fmt: skip


def table(rounds: list[Round], users: int, messages: int, seconds: float) -> str:
    grouped: dict[tuple[str, int], list[Round]] = {}
    for r in rounds:
        grouped.setdefault((r.side, r.clients), []).append(r)
    rows = [Row.of(group) for group in grouped.values()]
    repeats = max(len(group) for group in grouped.values())
    lines = [
        f"B5 throughput: {users} users x {messages:,} messages, warm list view for "
        f"{seconds:.0f} s per row, N client processes on N users; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f} at the end."
        + (f" Medians of {repeats} interleaved rounds." if repeats > 1 else ""),
        "",
        "| side | N | req/s | p50 | p99 | CPU per request: bridge process | all CPUs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        low, high = row.spread
        rate = f"{row.per_second:,.0f}" + (f" ({low:,.0f}-{high:,.0f})" if repeats > 1 else "")
        cpu = "" if row.cpu_per_request is None else ms(row.cpu_per_request)
        lines.append(
            f"| {row.side} | {row.clients} | {rate} | {ms(row.p50)} | {ms(row.p99)} | {cpu} "
            f"| {ms(row.machine_per_request)} |"
        )
    by = {(row.side, row.clients): row for row in rows}
    low_n, high_n = min(r.clients for r in rows), max(r.clients for r in rows)
    for side in dict.fromkeys(r.side for r in rows if r.cpu_per_request is not None):
        one, many = by.get((side, low_n)), by.get((side, high_n))
        if one and many and one.cpu_per_request and many.cpu_per_request:
            lines += [
                "",
                f"{side}, N={high_n} against N={low_n}: CPU per request "
                f"{many.cpu_per_request / one.cpu_per_request:.2f}x (target <= 1.5x), req/s "
                f"{many.per_second / one.per_second:.2f}x (target >= 1.5x), p99 at N={high_n} "
                f"/ p50 at N={low_n} {many.p99 / one.p50:.1f}x (target <= 20x).",
            ]
    return "\n".join(lines)


def warm(bridge: BridgeProcess, users: dict[str, str]) -> None:
    for user, password in users.items():
        jmap = Jmap(bridge.url, user, password)
        try:
            jmap.session()
            jmap.request(first_page_calls(jmap.account_id or "", inbox_of(jmap)))
            jmap.wait_indexed()
        finally:
            jmap.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.throughput", description=__doc__)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--messages", type=int, default=2000, help="INBOX size of each user")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENT_COUNTS))
    parser.add_argument("--sides", nargs="+", default=["bridge", "raw"])
    parser.add_argument("--bridge-flag", action="append", default=[],
                        help="extra flag for bridge serve (repeatable)")  # fmt: skip
    parser.add_argument("--push", action="store_true",
                        help="each bridge client also holds an EventSource open")  # fmt: skip
    parser.add_argument("--bridge-cpus", type=int, nargs="+",
                        help="pin the bridge process to these CPUs (taskset)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each side and N this often, interleaved")  # fmt: skip
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="also a bridge from DIR (another revision's tree, e.g. from "
                             "`git archive main`), side 'against', interleaved")  # fmt: skip
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="a bridge with each of these worker counts, side by side")  # fmt: skip
    args = parser.parse_args(argv)
    check(max(args.clients) <= args.users, "more clients than users")
    users = {f"tp{n:02d}": f"tp-pw-{n:02d}" for n in range(args.users)}
    rounds: list[Round] = []
    with contextlib.ExitStack() as stack:
        dovecot = stack.enter_context(Dovecot(dict(users)))
        progress(f"B5: seeding {args.users} users x {args.messages:,} messages")
        for user in users:
            seed_account(dovecot, user, inbox=args.messages)
        bridges: dict[str, BridgeProcess] = {}
        for workers in args.workers:
            label = "bridge" if workers == 1 else f"bridge, {workers} workers"
            flags = [*args.bridge_flag, *(["--workers", str(workers)] if workers > 1 else [])]
            bridges[label] = stack.enter_context(BridgeProcess(dovecot.port, flags=flags))
        if args.against:
            bridges["against"] = stack.enter_context(
                BridgeProcess(dovecot.port, flags=args.bridge_flag, repo=args.against)
            )
        for label, bridge in bridges.items():
            progress(f"B5: {label}: first page and whole index of every user")
            warm(bridge, users)
            assert bridge.process is not None
            if args.bridge_cpus:
                for thread in tree_threads(bridge.process.pid):
                    os.sched_setaffinity(thread, set(args.bridge_cpus))
        labels = [
            label
            for side in args.sides
            for label in (list(bridges) if side == "bridge" else [side])
        ]
        for repeat in range(args.rounds):
            for n in args.clients:
                for label in labels if repeat % 2 == 0 else labels[::-1]:
                    bridge = bridges.get(label)
                    side = "raw" if bridge is None else "bridge"
                    targets = [
                        Target(side, bridge.url if bridge else "", label, dovecot.port, user,
                               password, args.push)
                        for user, password in list(users.items())[:n]
                    ]  # fmt: skip
                    progress(f"B5: {label}, {n} clients for {args.seconds:.0f} s")
                    cpu_of = bridge.process.pid if bridge and bridge.process else None
                    last = run_round(targets, args.seconds, cpu_of)
                    rounds.append(last)
                    progress(
                        f"B5: {label} N={n}: {last.per_second:.0f} req/s, p50 "
                        f"{ms(last.percentile(0.5))}, p99 {ms(last.percentile(0.99))}, load "
                        f"{os.getloadavg()[0]:.1f}"
                    )
    print(table(rounds, args.users, args.messages, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
