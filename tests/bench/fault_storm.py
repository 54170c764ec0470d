"""Issue 11's storm, long version: ``python -m tests.bench.fault_storm [--rounds 100]``.

Runs tests/integration/fault_storm.py's storm (Dovecot SIGSTOPped or SIGKILLed and
restarted at random points of a mixed Email/set workload) and prints what happened:
rounds, requests, outcomes, request times, and every answer the upstream contradicts.
Exits 1 if any answer was untrue or any request outlived the deadline.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tests.integration.fault_storm import DEADLINE_TIMEOUTS, run_storm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--upstream-timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    # bridge's warnings (one per failed request) would bury the report.
    logging.basicConfig(level=logging.ERROR)
    report = run_storm(args.rounds, args.seed, args.upstream_timeout)
    print(report.summary())
    for violation in report.violations:
        print(f"- {violation}")
    deadline = DEADLINE_TIMEOUTS * args.upstream_timeout
    slow = [d for d in report.durations if d >= deadline]
    print(f"deadline {deadline:.0f} s: {len(slow)} requests over it")
    return 1 if report.violations or slow else 0


if __name__ == "__main__":
    sys.exit(main())
