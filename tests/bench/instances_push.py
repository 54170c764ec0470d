"""Push across instances: how long a write through instance A takes to reach an
EventSource on A itself and one on instance B, for each coordination store.

``python -m tests.bench.instances_push [--writes 20]``. One Dovecot, two bridge processes
over one data directory, coordinating through it (``data-dir``: B polls the published
states every 50 ms) and then through a throwaway PostgreSQL (``NOTIFY``). Each write is
an Email/set create through A; its latency on a stream is the time from sending the
request to the state event carrying the state the write answered with.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import BridgeProcess, progress
from tests.integration.server import JmapClient
from tests.integration.test_push import Events, states
from tests.support.postgres import PostgresCluster

USER, PASSWORD = "alice", "alice-pw"


def _arrival(events: Events, account: str, wanted: str) -> float:
    while True:
        name, data, _ = events.next(timeout=10)
        if name == "state" and states(data, account).get("Email") == wanted:
            return time.perf_counter()


def _listen(jmap: JmapClient) -> Events:
    events = Events(jmap, "types=Email&closeafter=no&ping=1")
    assert events.next()[0] == "ping"
    return events


def measure(
    coordination: str, imap_port: int, base: Path, writes: int
) -> tuple[list[float], list[float]]:
    data = base / f"data-{len(list(base.iterdir()))}"
    flags = ["--coordination", coordination]
    a = BridgeProcess(imap_port, data, flags, log_path=base / "a.log")
    b = BridgeProcess(imap_port, data, flags, log_path=base / "b.log")
    with a, b:
        via_a, via_b = JmapClient(a.url, USER, PASSWORD), JmapClient(b.url, USER, PASSWORD)
        drafts = via_a.mailboxes()["Drafts"]["id"]
        via_b.mailboxes()
        on_a, on_b = _listen(via_a), _listen(via_b)
        same: list[float] = []
        other: list[float] = []
        for n in range(writes):
            started = time.perf_counter()
            create = {"d": {"mailboxIds": {drafts: True}, "subject": f"push {n}"}}
            wanted = via_a.call("Email/set", {"create": create})["newState"]
            same.append(_arrival(on_a, via_a.account_id, wanted) - started)
            other.append(_arrival(on_b, via_b.account_id, wanted) - started)
            time.sleep(0.05)
        via_a.close()
        via_b.close()
    return same, other


def _summary(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:.1f} ms "
            f"({min(values) * 1000:.1f}-{max(values) * 1000:.1f})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.instances_push")
    parser.add_argument("--writes", type=int, default=20)
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="bench-instances-"))
    lines = ["| coordination | push on the writing instance | push on the other instance |",
             "| --- | ---: | ---: |"]  # fmt: skip
    with Dovecot({USER: PASSWORD}) as dovecot, PostgresCluster() as cluster:
        stores = {"data-dir": "data-dir", "postgresql": cluster.create_database("push")}
        for name, coordination in stores.items():
            progress(f"push across instances: {name}")
            same, other = measure(coordination, dovecot.port, base, args.writes)
            lines.append(f"| {name} | {_summary(same)} | {_summary(other)} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
