"""The request deadline: each IMAP command's reads are bounded by it and by the command
timeout, nothing is sent once it passed, and the engine runs no call after it."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from bridge import deadline
from bridge.imap.errors import DeadlinePassed
from bridge.imap.wire import BytesTransport, Wire
from bridge.jmap import CoreLimits, Engine, echo_method
from bridge.jmap.core import CORE_CAPABILITY


def wire(transcript: bytes = b"B1 OK done\r\nB2 OK done\r\n") -> tuple[Wire, BytesTransport]:
    transport = BytesTransport(transcript)
    wired = Wire(transport)
    wired.command_timeout = 15.0
    return wired, transport


def test_reads_wait_the_command_timeout_outside_a_request() -> None:
    wired, transport = wire()
    wired.run(b"NOOP")
    wired.run(b"NOOP")
    assert transport.timeouts == [15.0]  # set once, kept


def test_reads_wait_no_longer_than_the_time_left() -> None:
    wired, transport = wire()
    with deadline.within(2.0):
        wired.run(b"NOOP")
    last = transport.timeouts[-1]
    assert last > 1.5 and last <= 2.0


def test_nothing_is_sent_once_the_deadline_passed() -> None:
    wired, transport = wire()
    with deadline.within(0.0), pytest.raises(DeadlinePassed):
        wired.run(b"NOOP")
    assert transport.sent == [] and not wired.broken


def test_an_earlier_deadline_is_kept() -> None:
    with deadline.within(1.0), deadline.within(60.0):
        left = deadline.remaining()
        assert left is not None and left <= 1.0
    assert deadline.remaining() is None


def test_a_lock_is_waited_for_no_longer_than_the_time_left() -> None:
    lock = threading.Lock()
    lock.acquire()
    started = time.monotonic()
    with deadline.within(0.2):
        assert not deadline.acquire(lock)
    assert time.monotonic() - started < 1.0


def test_calls_after_the_deadline_are_not_run() -> None:
    engine = Engine(CoreLimits(), [CORE_CAPABILITY], [echo_method()])
    request = engine.parse_request(
        b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{},"a"]]}'
    )
    with deadline.within(0.0):
        response = engine.run(request, None, "acc", "s")
    [[name, args, call_id]] = response["methodResponses"]
    assert (name, args["type"], call_id) == ("error", "serverUnavailable", "a")


def test_a_context_copied_during_a_request_has_no_deadline_after_it() -> None:
    """asyncio copies the context into callbacks made during a request; uvicorn reads the
    next request of a kept-alive connection in one: it must not inherit a passed deadline."""
    with deadline.within(0.0):
        copied = contextvars.copy_context()
    assert copied.run(deadline.remaining) is None
    with deadline.within(60.0):
        left = copied.run(deadline.remaining)  # this request's own deadline is unaffected
        assert deadline.remaining() is not None and left is None
