"""Load: many users at once through one bridge, then the upstream connections winding down.

``python -m tests.bench.load [--users 50] [--clients 2] [--seconds 60] [--idle-timeout 30]``

bridge runs as its own process in front of a Dovecot whose users each have an INBOX of
``--messages`` messages. After one warm-up request per user, every user runs ``--clients``
client threads for ``--seconds``: each repeats a list view (Mailbox/get, Email/query of
the newest 50 in INBOX, Email/get of their list properties) and every fifth time also
toggles $seen on one message. Any HTTP status other than 200, any method error and any
check that fails counts as an error. Then the clients stop, and the test counts the TCP
connections Dovecot holds every second until bridge's idle reaper has closed them all.
Prints one JSON object; exits 1 if there was any error or a connection outlived the idle
timeout by more than its sweep interval.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from typing import Any

import httpx

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import LIST_PROPERTIES, USING, BridgeProcess, progress
from tests.bench.scenarios import seed_account
from tests.integration.server import established

PAGE = 50


class Client(threading.Thread):
    """One JMAP client of one user, repeating the workload until told to stop."""

    def __init__(self, url: str, user: str, password: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, auth=(user, password), timeout=60)
        self.stop = stop
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.account_id = ""
        self.inbox = ""

    def call(self, calls: list[list[Any]]) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            response = self.http.post("/jmap/api", json={"using": USING, "methodCalls": calls})
        except httpx.HTTPError as exc:
            self.errors.append(f"transport: {exc!r}")
            return None
        self.latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            self.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            return None
        results = {call_id: (name, args) for name, args, call_id in
                   response.json()["methodResponses"]}  # fmt: skip
        failed = [args for name, args in results.values() if name == "error"]
        if failed:
            self.errors.append(f"method error: {failed[0]}")
            return None
        return {call_id: args for call_id, (_, args) in results.items()}

    def warm(self) -> None:
        session = self.http.get("/jmap/session").json()
        self.account_id = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        got = self.call([["Mailbox/get", {"accountId": self.account_id, "ids": None}, "m"]])
        assert got is not None, self.errors
        [self.inbox] = [m["id"] for m in got["m"]["list"] if m["role"] == "inbox"]
        self.latencies.clear()

    def list_view(self) -> list[str]:
        account = self.account_id
        found = self.call([
            ["Mailbox/get", {"accountId": account, "ids": None}, "m"],
            ["Email/query", {"accountId": account, "filter": {"inMailbox": self.inbox},
                             "sort": [{"property": "receivedAt", "isAscending": False}],
                             "limit": PAGE}, "q"],
            ["Email/get", {"accountId": account, "properties": LIST_PROPERTIES,
                           "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}},
             "g"],
        ])  # fmt: skip
        if found is None:
            return []
        ids = found["q"]["ids"]
        if len(ids) != PAGE or len(found["g"]["list"]) != PAGE:
            self.errors.append(f"short page: {len(ids)} ids, {len(found['g']['list'])} emails")
        return list(ids)

    def toggle_seen(self, email_id: str) -> None:
        patch = {"keywords/$seen": True if random.random() < 0.5 else None}
        done = self.call([["Email/set", {"accountId": self.account_id,
                                         "update": {email_id: patch}}, "s"]])  # fmt: skip
        if done is not None and email_id not in (done["s"].get("updated") or {}):
            self.errors.append(f"not updated: {done['s'].get('notUpdated')}")

    def run(self) -> None:
        rounds = 0
        while not self.stop.is_set():
            ids = self.list_view()
            rounds += 1
            if ids and rounds % 5 == 0:
                self.toggle_seen(random.choice(ids))
        self.http.close()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients per user")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--messages", type=int, default=200, help="INBOX size of each user")
    parser.add_argument("--idle-timeout", type=float, default=30.0,
                        help="bridge's pool_idle_timeout for this run")  # fmt: skip
    args = parser.parse_args(argv)
    users = {f"load{n:03d}": f"load-pw-{n:03d}" for n in range(args.users)}
    with Dovecot(dict(users)) as dovecot:
        progress(f"load: seeding {args.users} users x {args.messages} messages")
        for user in users:
            seed_account(dovecot, user, inbox=args.messages)
        flags = ["--pool-idle-timeout", str(args.idle_timeout)]
        with BridgeProcess(dovecot.port, flags=flags) as bridge:
            stop = threading.Event()
            clients = [Client(bridge.url, user, password, stop)
                       for user, password in users.items()
                       for _ in range(args.clients)]  # fmt: skip
            progress(f"load: warming {len(clients)} clients")
            for client in clients:
                client.warm()
            progress(f"load: {len(clients)} clients for {args.seconds:.0f} s")
            peak_connections = 0
            started = time.monotonic()
            for client in clients:
                client.start()
            while time.monotonic() - started < args.seconds:
                peak_connections = max(peak_connections, established(dovecot.port))
                time.sleep(1)
            stop.set()
            for client in clients:
                client.join()
            ran = time.monotonic() - started
            stopped = time.monotonic()
            after = established(dovecot.port)
            progress(f"load: done; {after} upstream connections open, waiting for the reaper")
            # The reaper looks every quarter of the timeout (30 s at most).
            allowed = args.idle_timeout + min(args.idle_timeout / 4, 30) + 10
            counts: list[tuple[float, int]] = []
            while True:
                open_now = established(dovecot.port)
                counts.append((round(time.monotonic() - stopped, 1), open_now))
                if open_now == 0 or time.monotonic() - stopped > allowed:
                    break
                time.sleep(1)
            rss_peak_kib = bridge.memory_kib("VmHWM")
            rss_kib = bridge.memory_kib("VmRSS")
    latencies = [value for client in clients for value in client.latencies]
    errors = [error for client in clients for error in client.errors]
    drained_after = counts[-1][0] if counts[-1][1] == 0 else None
    report = {
        "users": args.users, "clients": len(clients), "seconds": round(ran, 1),
        "requests": len(latencies), "requests_per_s": round(len(latencies) / ran, 1),
        "errors": len(errors), "first_errors": errors[:5],
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "rss_peak_mib": round(rss_peak_kib / 1024, 1), "rss_end_mib": round(rss_kib / 1024, 1),
        "upstream_connections_peak": peak_connections,
        "upstream_connections_at_end_of_load": after,
        "idle_timeout_s": args.idle_timeout,
        "all_closed_after_s": drained_after,
        "upstream_connections_over_time": counts[:: max(1, len(counts) // 20)],
    }  # fmt: skip
    print(json.dumps(report, indent=1))
    return 0 if not errors and drained_after is not None else 1


if __name__ == "__main__":
    sys.exit(main())
