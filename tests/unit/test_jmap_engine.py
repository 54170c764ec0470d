"""Running method calls: dispatch, account checks, errors, created ids, implicit calls."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from bridge.jmap import (
    CallContext,
    CoreLimits,
    Engine,
    MethodError,
    MethodResult,
    MethodSpec,
    decode_args,
    echo_method,
)
from bridge.jmap.core import CORE_CAPABILITY
from bridge.jmap.standard import GetArgs, SetArgs

MAIL = "urn:ietf:params:jmap:mail"
OTHER = "urn:example:other"
ACCOUNT = "A1"


def foo_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(GetArgs, args)
    ids = request.ids if request.ids is not None else ["f1", "f2"]
    ctx.check_max_objects(len(ids), "maxObjectsInGet")
    return {"accountId": ctx.account_id, "state": "s1", "list": [{"id": i} for i in ids]}


def foo_set(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(SetArgs, args)
    ctx.check_max_objects(request.object_count(), "maxObjectsInSet")
    created = {}
    for creation_id in request.create or {}:
        real = f"real-{creation_id}"
        ctx.created_ids[creation_id] = real
        created[creation_id] = {"id": real}
    updated = {ctx.resolve_creation_id(i) or i: None for i in request.update or {}}
    return {"accountId": ctx.account_id, "created": created or None, "updated": updated or None}


def foo_copy(ctx: CallContext, args: dict[str, Any]) -> MethodResult:
    destroy = {"accountId": ctx.account_id, "destroy": ["x1"]}
    return MethodResult({"accountId": ctx.account_id}, extra=ctx.invoke("Foo/destroy", destroy))


def foo_destroy(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    return {"accountId": args["accountId"], "destroyed": args["destroy"]}


def broken(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("secret internal detail")


def refuses(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    raise MethodError("forbidden", "not for you", hint="extra")


def context_probe(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "account": ctx.account,
        "callId": ctx.call_id,
        "method": ctx.method_name,
        "using": sorted(ctx.using),
    }


def not_a_dict(ctx: CallContext, args: dict[str, Any]) -> Any:
    return ["oops"]


def unencodable(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    return {"value": object()}


def mutates_args(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    args["ids"].append("intruder")
    return {}


METHODS = [
    echo_method(),
    MethodSpec("Foo/get", MAIL, foo_get),
    MethodSpec("Foo/set", MAIL, foo_set),
    MethodSpec("Foo/copy", MAIL, foo_copy),
    MethodSpec("Foo/destroy", MAIL, foo_destroy),
    MethodSpec("Foo/broken", MAIL, broken),
    MethodSpec("Foo/refuses", MAIL, refuses),
    MethodSpec("Foo/probe", MAIL, context_probe, account_scoped=False),
    MethodSpec("Foo/notADict", MAIL, not_a_dict, account_scoped=False),
    MethodSpec("Foo/unencodable", MAIL, unencodable, account_scoped=False),
    MethodSpec("Foo/mutates", MAIL, mutates_args, account_scoped=False),
    MethodSpec("Other/get", OTHER, foo_get),
]


@pytest.fixture
def engine() -> Engine:
    limits = CoreLimits(max_objects_in_get=3, max_objects_in_set=2)
    return Engine(limits, [CORE_CAPABILITY, MAIL, OTHER], METHODS)


def run(
    engine: Engine,
    *calls: list[Any],
    using: tuple[str, ...] = (CORE_CAPABILITY, MAIL),
    **extra: Any,
) -> dict[str, Any]:
    body = msgspec.json.encode({"using": list(using), "methodCalls": list(calls), **extra})
    request = engine.parse_request(body)
    return engine.run(request, "the-account", ACCOUNT, "sess-1", request_id="req-9")


def responses(engine: Engine, *calls: list[Any], **kwargs: Any) -> list[list[Any]]:
    result: list[list[Any]] = run(engine, *calls, **kwargs)["methodResponses"]
    return result


def test_echo(engine: Engine) -> None:
    args = {"hello": True, "high": 5, "nested": {"list": [1, None]}}
    result = run(engine, ["Core/echo", args, "b3ff"])
    assert result == {"methodResponses": [["Core/echo", args, "b3ff"]], "sessionState": "sess-1"}


def test_echo_needs_core_in_using(engine: Engine) -> None:
    assert responses(engine, ["Core/echo", {}, "c"], using=(MAIL,)) == [
        ["error", {"type": "unknownMethod"}, "c"]
    ]


def test_unknown_method(engine: Engine) -> None:
    got = responses(engine, ["Foo/nothing", {}, "c1"], ["Core/echo", {"a": 1}, "c2"])
    assert got == [["error", {"type": "unknownMethod"}, "c1"], ["Core/echo", {"a": 1}, "c2"]]


def test_capability_not_in_using_is_unknown_method(engine: Engine) -> None:
    got = responses(engine, ["Other/get", {"accountId": ACCOUNT}, "c1"])
    assert got == [["error", {"type": "unknownMethod"}, "c1"]]
    got = responses(engine, ["Other/get", {"accountId": ACCOUNT}, "c1"], using=(OTHER,))
    assert got[0][0] == "Other/get"


def test_a_lenient_engine_runs_served_methods_whatever_using_says(engine: Engine) -> None:
    lenient = Engine(engine.limits, [CORE_CAPABILITY, MAIL, OTHER], METHODS, lenient_using=True)
    got = responses(lenient, ["Other/get", {"accountId": ACCOUNT}, "c1"], ["Foo/nothing", {}, "c2"])
    assert got[0][0] == "Other/get"
    assert got[1] == ["error", {"type": "unknownMethod"}, "c2"]


def test_account_not_found(engine: Engine) -> None:
    got = responses(engine, ["Foo/get", {"accountId": "B2"}, "c1"])
    assert got[0][0] == "error"
    assert got[0][1]["type"] == "accountNotFound"


@pytest.mark.parametrize("args", [{}, {"accountId": None}, {"accountId": 5}])
def test_missing_or_bad_account_id(engine: Engine, args: dict[str, Any]) -> None:
    got = responses(engine, ["Foo/get", args, "c1"])
    assert got[0][1]["type"] == "invalidArguments"


def test_context_seen_by_handler(engine: Engine) -> None:
    got = responses(engine, ["Foo/probe", {}, "p1"])
    assert got == [
        [
            "Foo/probe",
            {
                "account": "the-account",
                "callId": "p1",
                "method": "Foo/probe",
                "using": sorted([CORE_CAPABILITY, MAIL]),
            },
            "p1",
        ]
    ]


def test_unknown_argument_is_invalid_arguments(engine: Engine) -> None:
    got = responses(engine, ["Foo/get", {"accountId": ACCOUNT, "idz": []}, "c1"])
    assert got[0][1]["type"] == "invalidArguments"
    assert "idz" in got[0][1]["description"]


def test_wrong_argument_type_names_the_field(engine: Engine) -> None:
    got = responses(engine, ["Foo/get", {"accountId": ACCOUNT, "ids": [1]}, "c1"])
    assert got[0][1]["type"] == "invalidArguments"
    assert "ids[0]" in got[0][1]["description"]
    assert "$" not in got[0][1]["description"]


def test_method_error_with_extra_properties(engine: Engine) -> None:
    got = responses(engine, ["Foo/refuses", {"accountId": ACCOUNT}, "c1"])
    assert got == [
        ["error", {"type": "forbidden", "description": "not for you", "hint": "extra"}, "c1"]
    ]


def test_unexpected_exception_is_server_fail(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="bridge.jmap"):
        got = responses(
            engine,
            ["Foo/broken", {"accountId": ACCOUNT}, "c1"],
            ["Core/echo", {"still": "runs"}, "c2"],
        )
    error = got[0]
    assert error[0] == "error" and error[2] == "c1"
    assert error[1]["type"] == "serverFail"
    assert "secret" not in msgspec.json.encode(got).decode()
    assert "Traceback" not in str(error[1])
    assert got[1] == ["Core/echo", {"still": "runs"}, "c2"]
    record = caplog.records[-1]
    assert "req-9" in record.getMessage() and "Foo/broken" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ValueError


@pytest.mark.parametrize("method", ["Foo/notADict", "Foo/unencodable"])
def test_bad_handler_result_is_server_fail(engine: Engine, method: str) -> None:
    got = responses(engine, [method, {}, "c1"], ["Core/echo", {}, "c2"])
    assert got[0][1]["type"] == "serverFail"
    assert got[1][0] == "Core/echo"


def test_max_objects_in_get(engine: Engine) -> None:
    args = {"accountId": ACCOUNT, "ids": ["a", "b", "c", "d"]}
    got = responses(engine, ["Foo/get", args, "c1"])
    assert got[0][1]["type"] == "requestTooLarge"
    args["ids"] = ["a", "b", "c"]
    assert responses(engine, ["Foo/get", args, "c1"])[0][0] == "Foo/get"


def test_max_objects_in_set_counts_all_operations(engine: Engine) -> None:
    args = {"accountId": ACCOUNT, "create": {"k1": {}}, "update": {"x": {}}, "destroy": ["y"]}
    assert responses(engine, ["Foo/set", args, "c1"])[0][1]["type"] == "requestTooLarge"


def test_created_ids_absent_unless_given(engine: Engine) -> None:
    result = run(engine, ["Foo/set", {"accountId": ACCOUNT, "create": {"k1": {}}}, "c1"])
    assert "createdIds" not in result


def test_created_ids_round_trip(engine: Engine) -> None:
    result = run(
        engine,
        ["Foo/set", {"accountId": ACCOUNT, "create": {"k1": {}}}, "c1"],
        ["Foo/set", {"accountId": ACCOUNT, "update": {"#k1": {}, "#k0": {}}}, "c2"],
        createdIds={"k0": "earlier"},
    )
    assert result["createdIds"] == {"k0": "earlier", "k1": "real-k1"}
    assert result["methodResponses"][1][1]["updated"] == {"real-k1": None, "earlier": None}
    assert list(result) == ["methodResponses", "createdIds", "sessionState"]


def test_empty_created_ids_is_echoed(engine: Engine) -> None:
    assert run(engine, createdIds={})["createdIds"] == {}


def test_resolve_creation_id_only_for_references(engine: Engine) -> None:
    request = engine.parse_request(b'{"using": [], "methodCalls": [], "createdIds": {"a": "R"}}')
    seen: list[CallContext] = []

    def capture(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        seen.append(ctx)
        return {}

    probe = Engine(engine.limits, [CORE_CAPABILITY], [MethodSpec("X/y", CORE_CAPABILITY, capture)])
    request.using = [CORE_CAPABILITY]
    request.methodCalls = [("X/y", {"accountId": ACCOUNT}, "c")]
    probe.run(request, None, ACCOUNT, "s")
    ctx = seen[0]
    assert ctx.resolve_creation_id("#a") == "R"
    assert ctx.resolve_creation_id("#b") is None
    assert ctx.resolve_creation_id("a") is None


def test_implicit_response_follows_under_same_call_id(engine: Engine) -> None:
    got = responses(
        engine,
        ["Foo/copy", {"accountId": ACCOUNT}, "c1"],
        [
            "Core/echo",
            {"#gone": {"resultOf": "c1", "name": "Foo/destroy", "path": "/destroyed"}},
            "c2",
        ],
    )
    assert got == [
        ["Foo/copy", {"accountId": ACCOUNT}, "c1"],
        ["Foo/destroy", {"accountId": ACCOUNT, "destroyed": ["x1"]}, "c1"],
        ["Core/echo", {"gone": ["x1"]}, "c2"],
    ]


def test_implicit_call_error_becomes_error_response(engine: Engine) -> None:
    def copy_into_nowhere(ctx: CallContext, args: dict[str, Any]) -> MethodResult:
        implicit = ctx.invoke("Foo/broken", {"accountId": ACCOUNT})
        implicit += ctx.invoke("Foo/get", {"accountId": "elsewhere"})
        return MethodResult({"copied": True}, extra=implicit)

    methods = [*METHODS, MethodSpec("Foo/copy2", MAIL, copy_into_nowhere)]
    engine = Engine(engine.limits, [CORE_CAPABILITY, MAIL, OTHER], methods)
    got = responses(engine, ["Foo/copy2", {"accountId": ACCOUNT}, "c1"])
    assert [(r[0], r[1].get("type"), r[2]) for r in got] == [
        ("Foo/copy2", None, "c1"),
        ("error", "serverFail", "c1"),
        ("error", "accountNotFound", "c1"),
    ]


def test_reference_then_mutating_handler_leaves_earlier_response(engine: Engine) -> None:
    got = responses(
        engine,
        ["Core/echo", {"ids": ["a"]}, "c1"],
        ["Foo/mutates", {"#ids": {"resultOf": "c1", "name": "Core/echo", "path": "/ids"}}, "c2"],
    )
    assert got[0] == ["Core/echo", {"ids": ["a"]}, "c1"]


def test_method_registration_checks() -> None:
    with pytest.raises(ValueError, match="twice"):
        Engine(CoreLimits(), [CORE_CAPABILITY], [echo_method(), echo_method()])
    with pytest.raises(ValueError, match="capability"):
        Engine(CoreLimits(), [MAIL], [echo_method()])
