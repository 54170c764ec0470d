"""Issue 11's fuzz run, CI-sized: 5,000 generated hostile requests against a running bridge
in front of a Dovecot of its own. No response is a 500, no traceback reaches the log or a
client, and memory stays bounded. tests/bench/fuzz.py runs the same generator 100,000
times and more."""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.demo.dovecot import Dovecot
from tests.integration.fuzz_requests import Generator, send
from tests.integration.server import BridgeServer

REQUESTS = 5000
SEED = 11


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_fuzzed_requests_never_fail_the_server(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = dovecot_factory(users={"fuzz": "fuzz-pw"})
    caplog.set_level(logging.WARNING)
    with BridgeServer(upstream.host, upstream.port, tmp_path / "data") as server:
        jmap = server.client("fuzz", "fuzz-pw")
        methods = sorted(server.bridge.engine.methods)
        requests = iter(Generator(SEED, methods, jmap.account_id))
        send(server.url, ("fuzz", "fuzz-pw"), requests, 200)  # warm up: pool, cache, imports
        before = rss_mb()
        tally = send(server.url, ("fuzz", "fuzz-pw"), requests, REQUESTS)
        after = rss_mb()
        assert "INBOX" in jmap.mailboxes()  # and the account still works
        jmap.close()
    assert tally.requests == REQUESTS
    assert tally.failures == []
    assert 200 in tally.statuses and 400 in tally.statuses
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= 40]
    assert tracebacks == []
    assert after - before < 100, (before, after)
