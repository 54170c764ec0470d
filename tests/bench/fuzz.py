"""Issue 11's long fuzz run: ``python -m tests.bench.fuzz [--requests N] [--clients N]``.

bridge runs as its own process (``python -m bridge serve``) in front of a Dovecot of its
own; N generated hostile requests (tests/integration/fuzz_requests.py, one seed per client)
go to it from a few clients at once, below maxConcurrentRequests. Prints, as JSON: requests,
time, the HTTP statuses and error types seen, responses with status 500, tracebacks in
bridge's log, and bridge's resident memory after a warm-up and at the end. Exits 1 on any
500 or traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import BridgeProcess, progress
from tests.integration.fuzz_requests import Generator, Tally, send, served_methods

USER, PASSWORD = "fuzz", "fuzz-pw"


def _account(url: str) -> str:
    session = httpx.get(url + "/jmap/session", auth=(USER, PASSWORD), timeout=30).json()
    return session["primaryAccounts"]["urn:ietf:params:jmap:mail"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.fuzz", description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    with Dovecot({USER: PASSWORD}) as dovecot, BridgeProcess(dovecot.port) as bridge:
        methods, account = served_methods(), _account(bridge.url)
        generators = [iter(Generator(args.seed + n, methods, account)) for n in range(args.clients)]
        send(bridge.url, (USER, PASSWORD), generators[0], 500)  # warm-up
        rss_start = bridge.memory_kib("VmRSS")
        share = args.requests // args.clients
        progress(f"fuzz: {args.requests:,} requests from {args.clients} clients")
        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            tallies = list(pool.map(
                lambda g: send(bridge.url, (USER, PASSWORD), g, share), generators
            ))  # fmt: skip
        elapsed = time.monotonic() - started
        rss_end, rss_peak = bridge.memory_kib("VmRSS"), bridge.memory_kib("VmHWM")
        log = bridge.log_path.read_text(errors="replace")
        upstream_log = dovecot.read_log()
    tally = Tally()
    for part in tallies:
        tally.merge(part)
    report = {
        "requests": tally.requests, "seconds": round(elapsed, 1),
        "per_second": round(tally.requests / elapsed), "statuses": dict(tally.statuses),
        "errors": dict(tally.errors.most_common()),
        "answered": dict(tally.answered.most_common()),
        "status_500": tally.statuses.get(500, 0), "tracebacks_in_log": log.count("Traceback"),
        "rss_after_warmup_mib": round(rss_start / 1024, 1),
        "rss_end_mib": round(rss_end / 1024, 1), "rss_peak_mib": round(rss_peak / 1024, 1),
    }  # fmt: skip
    print(json.dumps(report, indent=1))
    for status, body, response in tally.failures[:10]:
        print(status, body[:300], response[:500], file=sys.stderr)
    if tally.failures or tally.errors.get("serverUnavailable"):
        # What bridge and Dovecot said, each distinct line once, with how often.
        for name, text in (("bridge", log), ("dovecot", upstream_log)):
            lines = Counter(" ".join(line.split()[2:])[:200] for line in text.splitlines())
            print(f"--- {name} log ---", file=sys.stderr)
            for line, count in lines.most_common(25):
                print(f"{count:7} {line}", file=sys.stderr)
    return 1 if tally.failures or report["tracebacks_in_log"] else 0


if __name__ == "__main__":
    sys.exit(main())
