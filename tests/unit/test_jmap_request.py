"""Request-level parsing: every problem becomes a RequestError with the right type."""

from __future__ import annotations

import json

import pytest

from bridge.jmap import CoreLimits, Engine, RequestError, echo_method
from bridge.jmap.core import CORE_CAPABILITY

MAIL = "urn:ietf:params:jmap:mail"


@pytest.fixture
def engine() -> Engine:
    limits = CoreLimits(max_calls_in_request=3, max_size_request=2000)
    return Engine(limits, [CORE_CAPABILITY, MAIL], [echo_method()])


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


def problem(engine: Engine, raw: bytes) -> RequestError:
    with pytest.raises(RequestError) as caught:
        engine.parse_request(raw)
    return caught.value


def test_valid_request() -> None:
    engine = Engine(CoreLimits(), [CORE_CAPABILITY], [echo_method()])
    request = engine.parse_request(
        body({"using": [CORE_CAPABILITY], "methodCalls": [["Core/echo", {"a": 1}, "c1"]]})
    )
    assert request.using == [CORE_CAPABILITY]
    assert request.methodCalls == [("Core/echo", {"a": 1}, "c1")]


def test_unknown_request_properties_are_ignored(engine: Engine) -> None:
    request = engine.parse_request(body({"using": [], "methodCalls": [], "future": {"x": 1}}))
    assert request.methodCalls == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"using": ["\xff"], "methodCalls": []}',
        b'{"using": [], "methodCalls": [], "ignored": "\xc3"}',
    ],
)
def test_invalid_utf8_is_not_json(engine: Engine, raw: bytes) -> None:
    error = problem(engine, raw)
    assert error.type == "notJSON"
    assert error.status == 400


@pytest.mark.parametrize(
    "raw", [b"", b"{", b'{"using": []', b"{} trailing", b'{"using": ["\\ud800"]}', b"nope"]
)
def test_malformed_json(engine: Engine, raw: bytes) -> None:
    assert problem(engine, raw).type == "notJSON"


@pytest.mark.parametrize(
    "obj",
    [
        [],
        "request",
        {"methodCalls": []},
        {"using": []},
        {"using": "urn:ietf:params:jmap:core", "methodCalls": []},
        {"using": [], "methodCalls": {}},
        {"using": [], "methodCalls": [["Core/echo", {}]]},
        {"using": [], "methodCalls": [["Core/echo", {}, "c1", "extra"]]},
        {"using": [], "methodCalls": [[1, {}, "c1"]]},
        {"using": [], "methodCalls": [["Core/echo", [], "c1"]]},
        {"using": [], "methodCalls": [["Core/echo", {}, 7]]},
        {"using": [], "methodCalls": [], "createdIds": None},
        {"using": [], "methodCalls": [], "createdIds": {"a": 1}},
    ],
)
def test_wrong_shape_is_not_request(engine: Engine, obj: object) -> None:
    error = problem(engine, body(obj))
    assert error.type == "notRequest"
    assert error.status == 400


def test_unknown_capability(engine: Engine) -> None:
    error = problem(engine, body({"using": [CORE_CAPABILITY, "urn:x:nope"], "methodCalls": []}))
    assert error.type == "unknownCapability"
    assert "urn:x:nope" in error.detail
    assert error.to_problem()["type"] == "urn:ietf:params:jmap:error:unknownCapability"


def test_too_many_calls(engine: Engine) -> None:
    calls = [["Core/echo", {}, f"c{n}"] for n in range(4)]
    error = problem(engine, body({"using": [], "methodCalls": calls}))
    assert (error.type, error.limit, error.status) == ("limit", "maxCallsInRequest", 400)


def test_as_many_calls_as_the_limit(engine: Engine) -> None:
    calls = [["Core/echo", {}, f"c{n}"] for n in range(3)]
    assert len(engine.parse_request(body({"using": [], "methodCalls": calls})).methodCalls) == 3


def test_too_large(engine: Engine) -> None:
    raw = body({"using": [], "methodCalls": [["Core/echo", {"pad": "x" * 2000}, "c"]]})
    error = problem(engine, raw)
    assert (error.type, error.limit, error.status) == ("limit", "maxSizeRequest", 400)
    assert error.to_problem() == {
        "type": "urn:ietf:params:jmap:error:limit",
        "status": 400,
        "detail": error.detail,
        "limit": "maxSizeRequest",
    }


def test_problem_without_limit_has_no_limit_key() -> None:
    error = RequestError("notJSON", 400, "bad")
    assert error.to_problem() == {
        "type": "urn:ietf:params:jmap:error:notJSON",
        "status": 400,
        "detail": "bad",
    }
