"""The one place that turns failures under a method into JMAP errors: a full disk and a
damaged cache are serverFail with one log line, not a traceback and a 500."""

from __future__ import annotations

import errno
import logging
import sqlite3
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.imap.errors import DeadlinePassed, UpstreamTimeout
from bridge.jmap import MethodError
from bridge.mail.common import translating_upstream_errors
from bridge.store.health import CacheDamaged


def _full() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (_full(), "serverFail"),
        (OSError(errno.ENOSPC, "No space left on device"), "serverFail"),
        (CacheDamaged("database disk image is malformed"), "serverFail"),
        (UpstreamTimeout("CREATE: no answer within 15.0 s"), "serverFail"),
        (DeadlinePassed("the user's sync did not finish in time"), "serverUnavailable"),
    ],
)
def test_failures_become_method_errors(
    failure: Exception, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        raise failure

    wrapped = translating_upstream_errors(handler)
    with caplog.at_level(logging.WARNING), pytest.raises(MethodError) as caught:
        wrapped(SimpleNamespace(method_name="Email/set"), {})  # type: ignore[arg-type]
    assert caught.value.type == expected
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is None


def test_other_os_errors_are_not_taken_for_a_full_disk() -> None:
    def handler(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        translating_upstream_errors(handler)(SimpleNamespace(method_name="x"), {})  # type: ignore[arg-type]
