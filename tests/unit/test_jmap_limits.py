"""bridge's own request limits: JSON depth measured on raw bytes, and filter size."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from bridge.jmap import CoreLimits, Engine, MethodError, RequestError, RequestLimits, echo_method
from bridge.jmap.core import CORE_CAPABILITY
from bridge.jmap.limits import check_filter_size, json_too_deep

LIMITS = RequestLimits()


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def random_json(rng: random.Random, depth: int, budget: list[int]) -> Any:
    if depth <= 0 or budget[0] <= 0 or rng.random() < 0.2:
        return rng.choice([1, None, "a[{", '\\"[', "}}]]"])
    budget[0] -= 1
    width = rng.randint(0, 3)
    if rng.random() < 0.5:
        return [random_json(rng, depth - 1, budget) for _ in range(width)]
    return {f"k{i}": random_json(rng, depth - 1, budget) for i in range(width)}


def test_depth_on_raw_bytes_agrees_with_the_decoded_value() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        value = random_json(rng, rng.randint(1, 90), [200])
        raw = json.dumps(value).encode()
        for limit in (1, 5, 9, 64):
            assert json_too_deep(raw, limit) == (depth_of(value) > limit), raw[:120]


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5_000_000 + b"]" * 5_000_000,  # one deep chain
        (b"[" * 60 + b"]" * 60 + b",") * 80_000,  # many chains just under the limit
        b"[" + b"[[[[[[[[[]]]]]]]]]," * 500_000 + b"[]]",  # many chains past the peeling
    ],
)
def test_depth_of_ten_megabytes_is_measured_in_linear_time(raw: bytes) -> None:
    started = time.process_time()
    json_too_deep(raw, 64)
    assert time.process_time() - started < 3.0


def engine() -> Engine:
    return Engine(CoreLimits(), [CORE_CAPABILITY], [echo_method()])


@pytest.mark.parametrize("depth", [65, 1000, 10_000])
def test_deep_json_is_a_limit_error(depth: int) -> None:
    arg = b"[" * depth + b"]" * depth
    body = b'{"using":[],"methodCalls":[["Core/echo",{"a":' + arg + b'},"0"]]}'
    with pytest.raises(RequestError) as caught:
        engine().parse_request(body)
    assert caught.value.to_problem()["limit"] == "maxJsonDepth"


def test_json_at_the_depth_limit_is_served() -> None:
    arg = b"[" * 60 + b"]" * 60  # 64 levels with the Request's own four
    body = b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"a":' + arg
    body += b'},"0"]]}'
    request = engine().parse_request(body)
    response = engine().run(request, None, "a", "s")
    assert depth_of(response["methodResponses"][0][1]["a"]) == 60


def nested_or(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"text": "x"}
    for _ in range(levels):
        node = {"operator": "OR", "conditions": [node]}
    return node


@pytest.mark.parametrize(
    ("filter_", "accepted"),
    [
        ({"operator": "OR", "conditions": [{"text": f"t{n}"} for n in range(127)]}, True),
        ({"operator": "OR", "conditions": [{"text": f"t{n}"} for n in range(128)]}, False),
        ({"operator": "AND", "conditions": [{"operator": "AND", "conditions": []}] * 200}, False),
        (nested_or(8), True),
        (nested_or(9), False),
        ({"text": "x" * 8192}, True),
        ({"text": "x" * 8193}, False),
        ({"header": ["Subject", "é" * 4097]}, False),
        ({"operator": "OR", "conditions": [{"from": "y" * 3000}] * 3}, False),
        ({"text": 5, "minSize": "big"}, True),  # types are the handler's to refuse
    ],
)
def test_filter_size(filter_: dict[str, Any], accepted: bool) -> None:
    if accepted:
        check_filter_size(filter_, LIMITS)
        return
    with pytest.raises(MethodError) as caught:
        check_filter_size(filter_, LIMITS)
    assert caught.value.type == "unsupportedFilter"
