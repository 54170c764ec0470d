"""Where bridge spends the benchmark's time: ``python -m tests.bench.profile [--quick]``.

Runs bridge in-process (uvicorn in a thread, as the integration tests do) and samples
every thread's Python stack every millisecond (``sys._current_frames``), so request
threads and the background indexer are both seen, which cProfile (one thread) would not.
For B1 cold, B2 warm and B3 delta on the large INBOX it prints, per bridge thread kind,
the functions that were on the stack in the largest share of samples ("cumulative") and
the innermost bridge function of each sample ("self", waiting on the socket included).
The sampler costs some speed: use it to see shares, not for the benchmark's numbers.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bridge.demo.dovecot import Dovecot
from bridge.demo.seed import seed_demo
from tests.bench.harness import REPO, Jmap, ms
from tests.bench.scenarios import (
    FULL,
    QUICK,
    USERS,
    Mutator,
    changes_calls,
    check_first_page,
    first_page_calls,
    inbox_of,
    seed_account,
)
from tests.integration.server import BridgeServer

BRIDGE = str(REPO / "bridge")


def _where(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename
    inside = path.startswith(BRIDGE)
    return f"{'bridge' + path[len(BRIDGE) :] if inside else Path(path).name}:{code.co_name}"


class Sampler(threading.Thread):
    """Samples the stacks of every thread but its own and the caller's."""

    def __init__(self, interval: float = 0.001) -> None:
        super().__init__(daemon=True, name="sampler")
        self.interval = interval
        self.skip = {threading.get_ident()}
        self.running = threading.Event()
        self.stop_flag = threading.Event()
        self.samples: collections.Counter[str] = collections.Counter()
        self.cumulative: dict[str, collections.Counter[str]] = {}
        self.leaf: dict[str, collections.Counter[str]] = {}

    def run(self) -> None:
        self.skip.add(threading.get_ident())
        names = {}
        while not self.stop_flag.is_set():
            if self.running.is_set():
                if len(names) != threading.active_count():
                    names = {t.ident: t.name for t in threading.enumerate()}
                for ident, frame in sys._current_frames().items():
                    if ident not in self.skip:
                        self._record(names.get(ident, "?"), frame)
            time.sleep(self.interval)

    def _record(self, thread_name: str, frame: FrameType | None) -> None:
        stack: list[str] = []
        while frame is not None:
            stack.append(_where(frame))
            frame = frame.f_back
        inside = [f for f in stack if f.startswith("bridge/")]
        if not inside:
            return  # idle: an event loop or a worker waiting for work
        kind = "indexer" if thread_name.startswith("index-") else "request"
        self.samples[kind] += 1
        self.cumulative.setdefault(kind, collections.Counter()).update(set(stack))
        # The innermost bridge function, and what it was calling if that is not bridge.
        leaf = inside[0] if stack[0] == inside[0] else f"{inside[0]} -> {stack[0]}"
        self.leaf.setdefault(kind, collections.Counter())[leaf] += 1

    def measure(self, action: Callable[[], Any], reset: bool = True) -> tuple[float, Any]:
        if reset:
            self.samples.clear()
            self.cumulative.clear()
            self.leaf.clear()
        self.running.set()
        start = time.perf_counter()
        try:
            result = action()
        finally:
            elapsed = time.perf_counter() - start
            self.running.clear()
        return elapsed, result

    def report(self, title: str, elapsed: float, top: int = 24) -> None:
        print(f"\n## {title}: {ms(elapsed)} wall\n")
        for kind, total in self.samples.most_common():
            print(f"{kind} thread(s): {total} samples (~{ms(total * self.interval)} of work)")
            print("  cumulative:")
            for where, count in self.cumulative[kind].most_common(top):
                print(f"    {100 * count / total:5.1f}%  {where}")
            print("  self (innermost bridge function):")
            for where, count in self.leaf[kind].most_common(top):
                print(f"    {100 * count / total:5.1f}%  {where}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profile", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small mailboxes")
    sizes = QUICK if parser.parse_args(argv).quick else FULL
    sampler = Sampler()
    sampler.start()
    with Dovecot(dict(USERS)) as dovecot, tempfile.TemporaryDirectory() as data:
        cold = seed_account(dovecot, "cold", sizes.inbox, sizes.folders, sizes.per_folder)
        large = seed_account(dovecot, "large", sizes.delta_large)
        seed_demo(dovecot, "warm")
        server = BridgeServer(dovecot.host, dovecot.port, Path(data)).start()
        try:
            # As run.py does: a running server (imports done, code paths exercised) before
            # a cold cache is timed, through another user.
            warm = Jmap(server.url, "warm", USERS["warm"])
            warm.session()
            warm.request(first_page_calls(warm.account_id or "", inbox_of(warm)))
            warm.close()
            jmap = Jmap(server.url, "cold", USERS["cold"])

            def cold_page() -> dict[str, Any]:
                jmap.session()
                inbox = inbox_of(jmap)
                return jmap.request(first_page_calls(jmap.account_id or "", inbox))

            elapsed, page = sampler.measure(cold_page)
            check_first_page(page, cold)
            sampler.report(f"B1 cold first page, {cold.total:,} messages", elapsed)
            elapsed, _ = sampler.measure(jmap.wait_indexed)
            sampler.report("B1 background indexing after the first page", elapsed)
            inbox = inbox_of(jmap)
            calls = first_page_calls(jmap.account_id or "", inbox)
            jmap.request(calls)
            elapsed, _ = sampler.measure(lambda: [jmap.request(calls) for _ in range(10)])
            sampler.report("B2 warm first page, 10 requests", elapsed)
            jmap.close()

            jmap = Jmap(server.url, "large", USERS["large"])
            jmap.session()
            inbox = inbox_of(jmap)
            jmap.request(first_page_calls(jmap.account_id or "", inbox))
            jmap.wait_indexed()
            account_id = jmap.account_id or ""
            state = jmap.request([["Email/get", {"accountId": account_id, "ids": []}, "s"]])
            since = state["s"][1]["state"]
            mutator = Mutator(dovecot, large, 5)
            total = 0.0
            for rep in range(5):
                mutator.round(rep)
                elapsed, result = sampler.measure(
                    lambda since=since: jmap.request(changes_calls(account_id, since)),
                    reset=rep == 0,
                )
                since = result["c"][1]["newState"]
                total += elapsed
            sampler.report(f"B3 delta, {large.total:,}-message INBOX, 5 requests", total)
            mutator.close()
            jmap.close()
        finally:
            server.stop()
    sampler.stop_flag.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
