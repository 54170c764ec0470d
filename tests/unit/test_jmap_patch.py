"""PatchObject application."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bridge.jmap import PatchError, apply_patch, top_level_properties

EMAIL: dict[str, Any] = {
    "id": "e1",
    "keywords": {"$seen": True, "$flagged": True},
    "mailboxIds": {"inbox": True},
    "headers": [{"name": "X-A", "value": "1"}],
    "sub": {"inner": {"deep": 1}, "a/b": {"c~d": 0}},
    "subject": "hello",
    "parentId": "p1",
}


def patched(patch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    original = copy.deepcopy(EMAIL)
    result = apply_patch(original, patch, **kwargs)
    assert original == EMAIL, "the input object must not change"
    return result


def test_whole_property_replacement() -> None:
    result = patched({"subject": "bye", "mailboxIds": {"sent": True}})
    assert result["subject"] == "bye"
    assert result["mailboxIds"] == {"sent": True}


def test_nested_set_and_remove() -> None:
    result = patched({"keywords/$draft": True, "keywords/$flagged": None})
    assert result["keywords"] == {"$seen": True, "$draft": True}


def test_remove_missing_key_is_noop() -> None:
    assert patched({"keywords/$absent": None})["keywords"] == EMAIL["keywords"]


def test_deep_nested_set() -> None:
    assert patched({"sub/inner/deep": 2})["sub"]["inner"] == {"deep": 2}


def test_escaped_tokens() -> None:
    assert patched({"sub/a~1b/c~0d": 5})["sub"]["a/b"] == {"c~d": 5}


def test_null_top_level_resets_to_default_or_null() -> None:
    assert patched({"parentId": None})["parentId"] is None
    assert patched({"subject": None}, defaults={"subject": ""})["subject"] == ""
    defaults: dict[str, Any] = {"keywords": {}}
    result = patched({"keywords": None}, defaults=defaults)
    assert result["keywords"] == {}
    assert result["keywords"] is not defaults["keywords"]


def test_null_for_absent_key_is_noop() -> None:
    assert patched({"absent": None}, defaults={"absent": 0}) == EMAIL
    assert patched({"sub/absent": None}) == EMAIL


def test_whole_object_is_a_valid_patch() -> None:
    assert patched(copy.deepcopy(EMAIL)) == EMAIL


def test_empty_patch() -> None:
    assert patched({}) == EMAIL


@pytest.mark.parametrize(
    ("patch", "offender"),
    [
        ({"headers/0/value": "2"}, "headers/0/value"),
        ({"headers/0": {}}, "headers/0"),
        ({"nothing/here": 1}, "nothing/here"),
        ({"subject/x": 1}, "subject/x"),
        ({"sub/missing/deep": 1}, "sub/missing/deep"),
        ({"keywords": {}, "keywords/$seen": True}, "keywords/$seen"),
        ({"sub": None, "sub/inner/deep": 1}, "sub/inner/deep"),
        ({"sub/inner": {}, "sub/inner/deep": 1}, "sub/inner/deep"),
        ({"keywords/a~2": True}, "keywords/a~2"),
    ],
)
def test_invalid_patches(patch: dict[str, Any], offender: str) -> None:
    with pytest.raises(PatchError) as caught:
        patched(patch)
    assert caught.value.property == offender
    assert offender in str(caught.value)


def test_siblings_sharing_a_prefix_string_do_not_conflict() -> None:
    result = patched({"keywords/$seen": None, "keywords/$seenx": True, "keywordsx": 1})
    assert result["keywords"] == {"$flagged": True, "$seenx": True}
    assert result["keywordsx"] == 1


def test_null_parent_is_not_an_object() -> None:
    with pytest.raises(PatchError):
        apply_patch({"a": None}, {"a/b": 1})


def test_top_level_properties() -> None:
    patch = {"keywords/$seen": True, "subject": "x", "a~1b/c": 1, "keywords/$x": None}
    assert top_level_properties(patch) == {"keywords", "subject", "a/b"}


def test_top_level_properties_rejects_bad_escape() -> None:
    with pytest.raises(PatchError):
        top_level_properties({"a~9": 1})
