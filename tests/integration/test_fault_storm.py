"""Issue 11's storm, CI size: 20 rounds of SIGSTOP / SIGKILL + restart of Dovecot under a
mixed Email/set workload (see fault_storm.py; ``python -m tests.bench.fault_storm`` runs
the long version)."""

from __future__ import annotations

from tests.integration.fault_storm import DEADLINE_TIMEOUTS, run_storm

UPSTREAM_TIMEOUT = 3.0


def test_fault_storm_keeps_every_answer_true() -> None:
    report = run_storm(rounds=20, seed=20261204, upstream_timeout=UPSTREAM_TIMEOUT)
    print(report.summary())
    assert report.rounds == 20 and report.requests > 100, report.summary()
    # Writes went through between the faults, and some answers said "resync".
    assert report.outcomes["create done"] > 20, report.summary()
    assert not report.violations, "\n".join(report.violations)
    assert max(report.durations) < DEADLINE_TIMEOUTS * UPSTREAM_TIMEOUT, report.summary()
