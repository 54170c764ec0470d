"""VacationResponse/set's decisions against an in-memory ManageSieve: what it writes, what
it refuses, and how a server failing half way is reported. The real server is in
tests/integration/test_vacation.py."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.jmap import MethodError
from bridge.mail.setting import Refused
from bridge.mail.vacation import Current, _Writer, read_current, validated
from bridge.mail.vacation_script import SCRIPT_NAME, read
from bridge.sieve.client import ManageSieve, Script
from bridge.sieve.errors import SieveCommandFailed, SieveUnavailable

EXTENSIONS = frozenset({"vacation", "include", "date", "relational", "fileinto", "reject"})


class MemorySieve:
    """Scripts in a dict; ``fail`` maps a command to the exception it raises next."""

    def __init__(self, scripts: dict[str, str] | None = None, active: str | None = None) -> None:
        self.scripts = dict(scripts or {})
        self.active = active
        self.extensions = EXTENSIONS
        self.fail: dict[str, Exception] = {}
        self.sent: list[str] = []

    def _command(self, name: str) -> None:
        self.sent.append(name)
        if name in self.fail:
            raise self.fail.pop(name)

    def list_scripts(self) -> list[Script]:
        self._command("LISTSCRIPTS")
        return [Script(name, name == self.active) for name in self.scripts]

    def get_script(self, name: str) -> str:
        self._command("GETSCRIPT")
        if name not in self.scripts:
            raise SieveCommandFailed("GETSCRIPT", "NONEXISTENT", "no such script")
        return self.scripts[name]

    def put_script(self, name: str, content: str) -> None:
        self._command("PUTSCRIPT")
        self.scripts[name] = content

    def set_active(self, name: str | None) -> None:
        self._command("SETACTIVE")
        self.active = name


def writer(sieve: MemorySieve) -> _Writer:
    fake: Any = sieve  # duck-typed: the ManageSieve methods _Writer calls
    session: ManageSieve = fake
    return _Writer(session, read_current(session))


def current(sieve: MemorySieve) -> Current:
    fake: Any = sieve
    return read_current(fake)


def test_enable_then_disable_keeps_the_users_script() -> None:
    sieve = MemorySieve({"mine": "keep;"}, active="mine")
    writer(sieve).update({"isEnabled": True, "textBody": "away"})
    assert sieve.active == SCRIPT_NAME
    stored = read(sieve.scripts[SCRIPT_NAME])
    assert stored is not None and stored.include == "mine"
    assert current(sieve).response.isEnabled is True
    writer(sieve).update({"isEnabled": False})
    assert sieve.active == "mine"
    assert current(sieve).response.textBody == "away"


def test_disable_when_the_included_script_is_gone() -> None:
    sieve = MemorySieve({"mine": "keep;"}, active="mine")
    writer(sieve).update({"isEnabled": True})
    del sieve.scripts["mine"]
    writer(sieve).update({"isEnabled": False})
    assert sieve.active is None


def test_nothing_to_change_sends_nothing() -> None:
    sieve = MemorySieve()
    w = writer(sieve)
    w.update({"isEnabled": False, "subject": None})
    assert not w.wrote and sieve.sent == ["LISTSCRIPTS"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [("QUOTA/MAXSIZE", "tooLarge"), ("QUOTA/MAXSCRIPTS", "overQuota"), (None, "forbidden")],
)
def test_a_refused_putscript(code: str | None, expected: str) -> None:
    sieve = MemorySieve()
    sieve.fail["PUTSCRIPT"] = SieveCommandFailed("PUTSCRIPT", code, "line 3: error")
    with pytest.raises(Refused) as refused:
        writer(sieve).update({"isEnabled": True})
    assert refused.value.error["type"] == expected
    assert sieve.active is None


def test_a_compile_error_is_described() -> None:
    sieve = MemorySieve()
    sieve.fail["PUTSCRIPT"] = SieveCommandFailed("PUTSCRIPT", None, "mine: line 3: error")
    with pytest.raises(Refused) as refused:
        writer(sieve).update({"isEnabled": True})
    assert "mine: line 3: error" in refused.value.error["description"]


def test_lost_before_writing_is_unavailable() -> None:
    sieve = MemorySieve()
    sieve.fail["PUTSCRIPT"] = SieveUnavailable("gone")
    with pytest.raises(SieveUnavailable):  # the session turns it into serverUnavailable
        writer(sieve).update({"isEnabled": True})


def test_lost_half_way_is_a_partial_failure() -> None:
    sieve = MemorySieve()
    sieve.fail["SETACTIVE"] = SieveUnavailable("gone")
    w = writer(sieve)
    with pytest.raises(MethodError) as error:
        w.update({"isEnabled": True})
    assert error.value.type == "serverPartialFail"
    assert w.wrote


def test_no_include_extension_with_rules_to_keep() -> None:
    sieve = MemorySieve({"mine": "keep;"}, active="mine")
    sieve.extensions = frozenset({"vacation"})
    with pytest.raises(Refused) as refused:
        writer(sieve).update({"isEnabled": True})
    assert refused.value.error["type"] == "forbidden"
    assert '"mine"' in refused.value.error["description"]
    assert sieve.active == "mine" and SCRIPT_NAME not in sieve.scripts
    # With no rules of the user's, nothing needs including.
    bare = MemorySieve()
    bare.extensions = frozenset({"vacation"})
    writer(bare).update({"isEnabled": True})
    assert bare.active == SCRIPT_NAME


def test_no_date_extension_for_dates() -> None:
    sieve = MemorySieve()
    sieve.extensions = frozenset({"vacation", "include"})
    with pytest.raises(Refused) as refused:
        writer(sieve).update({"isEnabled": True, "fromDate": "2026-01-01T00:00:00Z"})
    assert "date" in refused.value.error["description"]


def test_include_cycles_end() -> None:
    scripts = {
        "a": 'require "include"; include "b";',
        "b": 'require "include"; include "a"; include "jmap-vacation";',
    }
    sieve = MemorySieve(scripts, active="a")
    writer(sieve).update({"isEnabled": True})
    assert sieve.active == SCRIPT_NAME


BASE = {"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None,
        "subject": None, "textBody": None, "htmlBody": None}  # fmt: skip


def test_validated() -> None:
    response = validated({**BASE, "isEnabled": True, "subject": "Été", "textBody": "a\r\nb"})
    assert response.isEnabled and response.subject == "Été" and response.textBody == "a\r\nb"
    with pytest.raises(Refused) as refused:
        validated({**BASE, "subject": "a\u2028b", "htmlBody": "\udc00", "extra": 1})
    assert refused.value.error["properties"] == ["extra", "htmlBody", "subject"]
