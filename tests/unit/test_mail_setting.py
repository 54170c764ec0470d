"""The one /set loop: an error nobody foresaw fails its own object only."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.imap.errors import UpstreamUnavailable
from bridge.jmap.standard import SetArgs
from bridge.mail.setting import Refused, apply_each


def test_an_unexpected_error_fails_one_object_and_keeps_the_others() -> None:
    done: list[str] = []

    def create(key: str, obj: Any) -> dict[str, str]:
        if obj == "crash":
            raise AttributeError("'int' object has no attribute 'encode'")
        if obj == "refuse":
            raise Refused("invalidProperties", "no", ["subject"])
        done.append(key)
        return {"id": key.upper()}

    def update(key: str, patch: Any) -> None:
        raise KeyError(key)

    def destroy(key: str) -> None:
        done.append(key)

    request = SetArgs(accountId="a", create={"a": "ok", "b": "crash", "c": "refuse", "d": "ok"},
                      update={"u": {}}, destroy=["x"])  # fmt: skip
    result = apply_each(request, create, update, destroy)
    assert result["created"] == {"a": {"id": "A"}, "d": {"id": "D"}}
    assert result["notCreated"]["b"]["type"] == "serverFail"
    assert result["notCreated"]["c"]["type"] == "invalidProperties"
    assert result["notUpdated"]["u"]["type"] == "serverFail"
    assert result["destroyed"] == ["x"]
    assert done == ["a", "d", "x"]


def test_a_lost_upstream_still_ends_the_call() -> None:
    def create(key: str, obj: Any) -> None:
        raise UpstreamUnavailable("gone")

    with pytest.raises(UpstreamUnavailable):
        apply_each(SetArgs(accountId="a", create={"a": {}}), create, create, create)
