"""Standard-method helpers, argument decoding, limits, errors and ids."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.jmap import (
    CoreLimits,
    MethodError,
    SetError,
    check_max_objects,
    decode_args,
    is_valid_id,
    set_error,
)
from bridge.jmap.standard import (
    ChangesArgs,
    CopyArgs,
    GetArgs,
    QueryArgs,
    QueryChangesArgs,
    SetArgs,
    check_in_state,
    get_properties,
    page_query,
)

IDS = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    ("position", "anchor", "offset", "limit", "expected"),
    [
        (0, None, 0, None, (IDS, 0)),
        (2, None, 0, None, (["c", "d", "e"], 2)),
        (1, None, 0, 2, (["b", "c"], 1)),
        (5, None, 0, None, ([], 5)),
        (9, None, 0, 3, ([], 9)),
        (-2, None, 0, None, (["d", "e"], 3)),
        (-9, None, 0, 2, (["a", "b"], 0)),
        (0, None, 0, 0, ([], 0)),
        (3, None, 7, None, (["d", "e"], 3)),
        (4, "c", 0, None, (["c", "d", "e"], 2)),
        (0, "c", 1, 1, (["d"], 3)),
        (0, "c", -1, 2, (["b", "c"], 1)),
        (0, "b", -5, 2, (["a", "b"], 0)),
        (0, "e", 3, None, ([], 7)),
        (0, "a", 0, 0, ([], 0)),
    ],
)
def test_page_query(
    position: int, anchor: str | None, offset: int, limit: int | None, expected: Any
) -> None:
    assert page_query(IDS, position, anchor, offset, limit) == expected


def test_page_query_anchor_not_found() -> None:
    with pytest.raises(MethodError) as caught:
        page_query(IDS, 0, "zz", 0, None)
    assert caught.value.type == "anchorNotFound"


@pytest.mark.parametrize(
    ("position", "offset", "limit"), [(0, 0, -1), ("1", 0, None), (True, 0, None), (0, 1.5, 1)]
)
def test_page_query_invalid_arguments(position: Any, offset: Any, limit: Any) -> None:
    with pytest.raises(MethodError) as caught:
        page_query(IDS, position, None, offset, limit)
    assert caught.value.type == "invalidArguments"


def test_get_properties() -> None:
    everything = ("id", "name", "role")
    assert get_properties(None, everything) == {"id", "name", "role"}
    assert get_properties(["name"], everything) == {"id", "name"}
    assert get_properties([], everything) == {"id"}
    assert get_properties(["name"], everything, always=()) == {"name"}
    with pytest.raises(MethodError) as caught:
        get_properties(["name", "colour"], everything)
    assert caught.value.type == "invalidArguments"
    assert "colour" in (caught.value.description or "")


def test_check_in_state() -> None:
    check_in_state(None, "s1")
    check_in_state("s1", "s1")
    with pytest.raises(MethodError) as caught:
        check_in_state("s0", "s1")
    assert caught.value.type == "stateMismatch"


def test_decode_standard_args() -> None:
    get = decode_args(GetArgs, {"accountId": "A", "ids": ["x"]})
    assert (get.accountId, get.ids, get.properties) == ("A", ["x"], None)
    query = decode_args(QueryArgs, {"accountId": "A", "anchorOffset": -1, "calculateTotal": True})
    assert (query.position, query.anchorOffset, query.limit, query.calculateTotal) == (
        0,
        -1,
        None,
        True,
    )
    changes = decode_args(ChangesArgs, {"accountId": "A", "sinceState": "s", "maxChanges": 5})
    assert (changes.sinceState, changes.maxChanges) == ("s", 5)
    qc = decode_args(QueryChangesArgs, {"accountId": "A", "sinceQueryState": "q", "upToId": "u"})
    assert (qc.sinceQueryState, qc.upToId, qc.maxChanges) == ("q", "u", None)
    copy = decode_args(CopyArgs, {"accountId": "A", "fromAccountId": "B", "create": {}})
    assert copy.onSuccessDestroyOriginal is False
    set_args = decode_args(
        SetArgs, {"accountId": "A", "create": {"k": {}}, "update": {"x": {}}, "destroy": ["y"]}
    )
    assert set_args.object_count() == 3
    assert decode_args(SetArgs, {"accountId": "A"}).object_count() == 0


@pytest.mark.parametrize(
    ("struct", "args", "field"),
    [
        (GetArgs, {}, "accountId"),
        (GetArgs, {"accountId": "A", "extra": 1}, "extra"),
        (GetArgs, {"accountId": "A", "ids": "x"}, "ids"),
        (ChangesArgs, {"accountId": "A", "sinceState": "s", "maxChanges": 0}, "maxChanges"),
        (ChangesArgs, {"accountId": "A"}, "sinceState"),
        (QueryArgs, {"accountId": "A", "limit": -1}, "limit"),
        (QueryArgs, {"accountId": "A", "position": "1"}, "position"),
        (QueryArgs, {"accountId": "A", "calculateTotal": 1}, "calculateTotal"),
        (QueryArgs, {"accountId": "A", "filter": []}, "filter"),
        (SetArgs, {"accountId": "A", "create": {"k": 1}}, "create"),
        (CopyArgs, {"accountId": "A", "create": {}}, "fromAccountId"),
    ],
)
def test_decode_invalid_arguments(struct: type, args: dict[str, Any], field: str) -> None:
    with pytest.raises(MethodError) as caught:
        decode_args(struct, args)
    assert caught.value.type == "invalidArguments"
    assert field in (caught.value.description or "")


def test_extended_args_keep_rejecting_unknown_fields() -> None:
    class MailboxSetArgs(SetArgs, kw_only=True):
        onDestroyRemoveEmails: bool = False

    args = decode_args(MailboxSetArgs, {"accountId": "A", "onDestroyRemoveEmails": True})
    assert args.onDestroyRemoveEmails is True
    with pytest.raises(MethodError):
        decode_args(MailboxSetArgs, {"accountId": "A", "sortAsTree": True})


def test_core_limits_capability() -> None:
    assert CoreLimits().to_capability() == {
        "maxSizeUpload": 50_000_000,
        "maxConcurrentUpload": 4,
        "maxSizeRequest": 10_000_000,
        "maxConcurrentRequests": 4,
        "maxCallsInRequest": 64,
        "maxObjectsInGet": 1000,
        "maxObjectsInSet": 1000,
        "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"],
    }
    assert CoreLimits(max_objects_in_get=5).to_capability()["maxObjectsInGet"] == 5


def test_check_max_objects() -> None:
    limits = CoreLimits(max_objects_in_get=2, max_objects_in_set=3)
    check_max_objects(limits, 2, "maxObjectsInGet")
    check_max_objects(limits, 3, "maxObjectsInSet")
    with pytest.raises(MethodError) as caught:
        check_max_objects(limits, 3, "maxObjectsInGet")
    assert caught.value.type == "requestTooLarge"
    with pytest.raises(KeyError):
        check_max_objects(limits, 1, "maxObjectsEverywhere")


def test_method_error_response() -> None:
    assert MethodError("unknownMethod").to_response() == {"type": "unknownMethod"}
    error = MethodError("invalidArguments", "bad ids", arguments=["ids"])
    assert error.to_response() == {
        "type": "invalidArguments",
        "description": "bad ids",
        "arguments": ["ids"],
    }
    assert str(error) == "bad ids"


def test_set_errors() -> None:
    assert set_error("notFound") == {"type": "notFound"}
    assert set_error("invalidProperties", "bad", ["name"]) == {
        "type": "invalidProperties",
        "description": "bad",
        "properties": ["name"],
    }
    assert set_error("alreadyExists", existingId="m1") == {
        "type": "alreadyExists",
        "existingId": "m1",
    }
    raised = SetError("tooLarge", "big", maxSize=10)
    assert raised.to_dict() == {"type": "tooLarge", "description": "big", "maxSize": 10}


@pytest.mark.parametrize("value", ["a", "A-z_9", "x" * 255])
def test_valid_ids(value: str) -> None:
    assert is_valid_id(value)


@pytest.mark.parametrize("value", ["", "x" * 256, "a b", "a/b", "é", "a\n", 5, None])
def test_invalid_ids(value: object) -> None:
    assert not is_valid_id(value)
