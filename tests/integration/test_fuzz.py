"""Issue 11's fuzz run, CI-sized: 6,000 generated hostile requests from three clients at
once against bridge running as its own process (as deployed) in front of a Dovecot of its
own. No response is a 500, no traceback reaches the log or a client, and bridge's memory
stays bounded. tests/bench/fuzz.py runs the same generator 100,000 times and more."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import BridgeProcess
from tests.integration.fuzz_requests import Generator, Tally, send, served_methods

REQUESTS = 6000
CLIENTS = 3  # at once, as clients do: below maxConcurrentRequests
SEED = 11
AUTH = ("fuzz", "fuzz-pw")
# Every fuzzed request is quick: the run lasts longer than this, so a deadline leaking
# from one request into the next on a kept-alive connection shows as serverUnavailable.
REQUEST_TIMEOUT = "8"


def test_fuzzed_requests_never_fail_the_server(
    dovecot_factory: Callable[..., Dovecot], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = dovecot_factory(users=dict([AUTH]))
    monkeypatch.setenv("BRIDGE_REQUEST_TIMEOUT", REQUEST_TIMEOUT)
    with BridgeProcess(upstream.port) as bridge:
        session = httpx.get(bridge.url + "/jmap/session", auth=AUTH).json()
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        methods = served_methods()
        streams = [iter(Generator(SEED + n, methods, account)) for n in range(CLIENTS)]
        send(bridge.url, AUTH, streams[0], 300)  # warm up: pool, cache, imports
        before = bridge.memory_kib("VmRSS") / 1024
        tally = Tally()
        with ThreadPoolExecutor(CLIENTS) as clients:
            share = REQUESTS // CLIENTS
            for part in clients.map(lambda s: send(bridge.url, AUTH, s, share), streams):
                tally.merge(part)
        after = bridge.memory_kib("VmRSS") / 1024
        mailboxes = httpx.post(bridge.url + "/jmap/api", auth=AUTH, json={
            "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
            "methodCalls": [["Mailbox/get", {"accountId": account}, "m"]]})  # fmt: skip
        log = bridge.log_path.read_text(errors="replace")
    assert tally.requests == REQUESTS
    assert tally.failures == []
    assert 200 in tally.statuses and 400 in tally.statuses
    assert tally.errors["serverUnavailable"] == 0  # the upstream was there all along
    assert "INBOX" in mailboxes.text  # and the account still works
    assert "Traceback" not in log and " ERROR " not in log
    assert after - before < 64, (before, after)  # MiB; +19 over 100,000 in the bench
