"""The counters the engine and the IMAP wire keep, as a scrape shows them: every label
value from a closed set, whatever a client or a server sends."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import generate_latest

from bridge import metrics
from bridge.imap.errors import CommandFailed, UpstreamTimeout
from bridge.imap.wire import BytesTransport, Wire
from bridge.jmap import CallContext, CoreLimits, Engine, MethodError, MethodSpec
from bridge.jmap.core import CORE_CAPABILITY

MAIL = "urn:ietf:params:jmap:mail"
CALLS = "bridge_jmap_method_calls_total"
COMMANDS = "bridge_imap_commands_total"


def count(name: str, **labels: str) -> float:
    return metrics.registry().get_sample_value(name, labels) or 0.0


def scrape() -> str:
    return generate_latest(metrics.registry()).decode()


def ok(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    return {}


def refused(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    raise MethodError("forbidden", "no")


def test_method_calls_are_counted_by_registered_name_and_result() -> None:
    engine = Engine(
        CoreLimits(), [CORE_CAPABILITY, MAIL],
        [MethodSpec("Ops/ok", MAIL, ok, account_scoped=False),
         MethodSpec("Ops/refused", MAIL, refused, account_scoped=False)],
    )  # fmt: skip
    before_ok = count(CALLS, method="Ops/ok", result="ok")
    before_refused = count(CALLS, method="Ops/refused", result="forbidden")
    before_unknown = count(CALLS, method="unknown", result="unknownMethod")
    request = engine.parse_request(
        b'{"using": ["urn:ietf:params:jmap:mail"], "methodCalls": ['
        b'["Ops/ok", {}, "a"], ["Ops/refused", {}, "b"], ["Ops/x-made-up-by-a-client", {}, "c"]]}'
    )
    engine.run(request, None, "A1", "s")
    assert count(CALLS, method="Ops/ok", result="ok") == before_ok + 1
    assert count(CALLS, method="Ops/refused", result="forbidden") == before_refused + 1
    assert count(CALLS, method="unknown", result="unknownMethod") == before_unknown + 1
    text = scrape()
    assert 'bridge_jmap_method_duration_seconds_count{method="Ops/ok"}' in text
    assert "x-made-up-by-a-client" not in text


def test_imap_commands_are_counted_by_result() -> None:
    before_ok = count(COMMANDS, command="NOOP", result="ok")
    before_no = count(COMMANDS, command="CREATE", result="no")
    wire = Wire(BytesTransport(b"B1 OK done\r\nB2 NO [ALREADYEXISTS] exists\r\n"))
    wire.run(b"NOOP")
    with pytest.raises(CommandFailed):
        wire.run(b'CREATE "x"').check()
    assert count(COMMANDS, command="NOOP", result="ok") == before_ok + 1
    assert count(COMMANDS, command="CREATE", result="no") == before_no + 1


def test_a_silent_server_counts_as_a_timeout() -> None:
    class Silent(BytesTransport):
        def readline(self, limit: int) -> bytes:
            raise TimeoutError("timed out")

    before = count(COMMANDS, command="SELECT", result="timeout")
    with pytest.raises(UpstreamTimeout):
        Wire(Silent(b"")).run(b'SELECT "INBOX"')
    assert count(COMMANDS, command="SELECT", result="timeout") == before + 1


def test_a_command_name_outside_the_known_set_is_other() -> None:
    assert metrics.imap_command_label("uid fetch") == "UID FETCH"
    assert metrics.imap_command_label("XYZZY") == "OTHER"
