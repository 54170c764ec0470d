"""Result references and the JSON Pointer they use."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bridge.jmap import CoreLimits, Engine, MethodError, echo_method
from bridge.jmap.core import CORE_CAPABILITY
from bridge.jmap.pointer import PointerError, evaluate, parse_pointer
from bridge.jmap.references import resolve_references

THREADS = {
    "list": [
        {"id": "t1", "emailIds": ["m1", "m2"]},
        {"id": "t2", "emailIds": ["m3"]},
        {"id": "t3", "emailIds": []},
    ],
    "a/b": {"m~n": 1},
    "matrix": [[[1, 2], [3]], [[4]]],
}


def lookup_in(responses: dict[tuple[str, str], dict[str, Any]]) -> Any:
    return lambda call_id, name: responses.get((call_id, name))


LOOKUP = lookup_in({("t0", "Thread/get"): THREADS})


def ref(path: str, result_of: str = "t0", name: str = "Thread/get") -> dict[str, str]:
    return {"resultOf": result_of, "name": name, "path": path}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", THREADS),
        ("/list/0/id", "t1"),
        ("/list/*/id", ["t1", "t2", "t3"]),
        ("/list/*/emailIds", ["m1", "m2", "m3"]),
        ("/list/1/emailIds/0", "m3"),
        ("/a~1b/m~0n", 1),
        ("/matrix/*", [[1, 2], [3], [4]]),
        ("/matrix/*/*", [1, 2, 3, 4]),
        ("/matrix/*/0", [1, 2, 4]),
    ],
)
def test_evaluate(pointer: str, expected: Any) -> None:
    assert evaluate(THREADS, parse_pointer(pointer)) == expected


@pytest.mark.parametrize(
    "pointer",
    [
        "list",
        "/missing",
        "/list/3",
        "/list/01",
        "/list/-",
        "/list/x",
        "/list/0/id/more",
        "/a~2b",
        "/a~",
        "/list/*/missing",
    ],
)
def test_evaluate_fails(pointer: str) -> None:
    with pytest.raises(PointerError):
        evaluate(THREADS, parse_pointer(pointer))


def test_escape_order() -> None:
    assert parse_pointer("/~01") == ["~1"]
    assert parse_pointer("/~10") == ["/0"]


def test_star_on_object_is_a_key() -> None:
    assert evaluate({"*": 1}, ["*"]) == 1


def test_no_references_returns_args_unchanged() -> None:
    args = {"accountId": "A1"}
    assert resolve_references(args, LOOKUP) is args


def test_resolves_and_drops_the_hash_key() -> None:
    args = {"accountId": "A1", "#ids": ref("/list/*/emailIds")}
    assert resolve_references(args, LOOKUP) == {"accountId": "A1", "ids": ["m1", "m2", "m3"]}


def test_plain_and_reference_together_is_invalid_arguments() -> None:
    with pytest.raises(MethodError) as caught:
        resolve_references({"ids": [], "#ids": ref("/list")}, LOOKUP)
    assert caught.value.type == "invalidArguments"


@pytest.mark.parametrize(
    "reference",
    [
        ref("/list", result_of="nope"),
        ref("/list", name="Email/get"),
        ref("/list/*/nope"),
        ref("list"),
        {"resultOf": "t0", "name": "Thread/get"},
        {"resultOf": "t0", "name": "Thread/get", "path": 5},
        "t0",
    ],
)
def test_invalid_result_reference(reference: Any) -> None:
    with pytest.raises(MethodError) as caught:
        resolve_references({"#ids": reference}, LOOKUP)
    assert caught.value.type == "invalidResultReference"


def run(*calls: list[Any]) -> list[list[Any]]:
    engine = Engine(CoreLimits(), [CORE_CAPABILITY], [echo_method()])
    body = msgspec.json.encode({"using": [CORE_CAPABILITY], "methodCalls": list(calls)})
    result: list[list[Any]] = engine.run(engine.parse_request(body), None, "A1", "s")[
        "methodResponses"
    ]
    return result


def test_engine_resolves_against_earlier_responses() -> None:
    got = run(
        ["Core/echo", THREADS, "t0"],
        ["Core/echo", {"#ids": ref("/list/*/emailIds", name="Core/echo")}, "t1"],
    )
    assert got[1] == ["Core/echo", {"ids": ["m1", "m2", "m3"]}, "t1"]


def test_engine_reference_failures_are_method_errors() -> None:
    got = run(
        ["Core/echo", {"x": 1}, "t0"],
        ["Core/echo", {"#x": ref("/x", name="Thread/get")}, "t1"],
        ["Core/echo", {"#x": ref("/x", result_of="t9", name="Core/echo")}, "t2"],
        ["Core/echo", {"#x": ref("/x", result_of="t3", name="Core/echo")}, "t3"],
        ["Core/echo", {"x": 2, "#x": ref("/x", name="Core/echo")}, "t4"],
    )
    assert [(r[0], r[1].get("type")) for r in got] == [
        ("Core/echo", None),
        ("error", "invalidResultReference"),
        ("error", "invalidResultReference"),
        ("error", "invalidResultReference"),
        ("error", "invalidArguments"),
    ]


def test_error_response_can_not_be_referenced_by_method_name() -> None:
    got = run(
        ["Nope/get", {}, "t0"],
        ["Core/echo", {"#x": ref("/type", name="Nope/get")}, "t1"],
        ["Core/echo", {"#x": ref("/type", name="error")}, "t2"],
    )
    assert got[1][1]["type"] == "invalidResultReference"
    assert got[2] == ["Core/echo", {"x": "unknownMethod"}, "t2"]
