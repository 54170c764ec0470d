"""VacationResponse/get and /set (RFC 8621 §8) over ManageSieve (RFC 5804).

The object lives in a Sieve script of bridge's own (``vacation_script``). It is on when
that script says so and is the active one: if another client activated a script since,
the response reads as off, and turning it on again includes that script instead. Turning
it off re-activates the script bridge's included (or none, if none was active before),
so nothing of the user's is lost. Where the user's rules cannot run beside a vacation
reply, /set refuses rather than drop them.

Each call opens one ManageSieve session as the user, with the request's password. The
state is a digest of bridge's script and the active script's name, so it moves whenever
what /get shows can. Push reports it only as this process last saw it (after a /set, or
a /get once known): polling ManageSieve for every listener would cost a login a tick.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from bridge.config import Settings
from bridge.endpoint import Endpoint
from bridge.jmap import CallContext, MethodError, decode_args
from bridge.jmap.standard import GetArgs, SetArgs, check_in_state, get_properties
from bridge.mail.account import UserData
from bridge.mail.common import account_of
from bridge.mail.setting import Refused, apply_each, patched
from bridge.mail.vacation_script import (
    SCRIPT_NAME,
    Stored,
    VacationResponse,
    needed_extensions,
    parse_utc_date,
    read,
    render,
)
from bridge.sieve.client import ManageSieve
from bridge.sieve.errors import SieveAuthFailed, SieveCommandFailed, SieveUnavailable
from bridge.sieve.language import analyse

SINGLETON = "singleton"
PROPERTIES = ("id", "isEnabled", "fromDate", "toDate", "subject", "textBody", "htmlBody")
# What a script run beside a vacation action must not use: a second vacation is a
# runtime error and reject/ereject conflict with it (RFC 5230 §4.7). Either way the
# server falls back to implicit keep and none of the user's rules take effect.
CONFLICTING = frozenset({"vacation", "vacation-seconds", "reject", "ereject"})
MAX_CHECKED = 16  # scripts followed through include when looking for those


def _endpoint(settings: Settings) -> Endpoint:
    endpoint = settings.sieve_endpoint
    if endpoint is None:
        raise MethodError("serverFail", "no ManageSieve server is configured")
    return endpoint


@contextmanager
def _session(ctx: CallContext) -> Iterator[ManageSieve]:
    """A ManageSieve session as the user; its failures become method errors."""
    account = account_of(ctx)
    username, password = account.login
    try:
        with ManageSieve.open(_endpoint(account.settings), username, password) as sieve:
            yield sieve
    except SieveUnavailable as exc:
        raise MethodError("serverUnavailable", "the ManageSieve server is unavailable") from exc
    except SieveAuthFailed as exc:
        raise MethodError("serverFail", "the ManageSieve server refused the login") from exc
    except SieveCommandFailed as exc:
        raise MethodError("serverFail", f"the ManageSieve server refused {exc.command}") from exc


@dataclass(frozen=True)
class Current:
    """What the server holds now."""

    names: frozenset[str]
    active: str | None
    own: str | None  # the text of bridge's script, if there is one
    stored: Stored | None  # what it holds; None also when the script is not bridge's

    @property
    def state(self) -> str:
        return hashlib.sha256(msgspec.json.encode([self.active, self.own])).hexdigest()[:16]

    @property
    def foreign(self) -> bool:
        """A script has bridge's name but not its content: bridge will not overwrite it."""
        return self.own is not None and self.stored is None

    @property
    def response(self) -> VacationResponse:
        if self.stored is None:
            return VacationResponse()
        enabled = self.stored.response.isEnabled and self.active == SCRIPT_NAME
        return msgspec.structs.replace(self.stored.response, isEnabled=enabled)

    def as_object(self) -> dict[str, Any]:
        return {"id": SINGLETON, **msgspec.structs.asdict(self.response)}


def read_current(sieve: ManageSieve) -> Current:
    scripts = sieve.list_scripts()
    names = frozenset(script.name for script in scripts)
    active = next((script.name for script in scripts if script.active), None)
    own = sieve.get_script(SCRIPT_NAME) if SCRIPT_NAME in names else None
    return Current(names, active, own, read(own) if own is not None else None)


def _remember(user: UserData, state: str, *, changed: bool) -> None:
    # A state first learned by a /get is no news: push would announce a change.
    if changed or user.vacation_state is not None:
        user.vacation_state = state


# -- /get --------------------------------------------------------------------------------------


def vacation_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(GetArgs, args)
    wanted = get_properties(request.properties, PROPERTIES)
    if request.ids is not None:
        ctx.check_max_objects(len(request.ids), "maxObjectsInGet")
    with _session(ctx) as sieve:
        current = read_current(sieve)
    _remember(account_of(ctx).user, current.state, changed=False)
    ids = [SINGLETON] if request.ids is None else list(dict.fromkeys(request.ids))
    found = {key: value for key, value in current.as_object().items() if key in wanted}
    return {
        "accountId": ctx.account_id,
        "state": current.state,
        "list": [found] if SINGLETON in ids else [],
        "notFound": [object_id for object_id in ids if object_id != SINGLETON],
    }


# -- /set --------------------------------------------------------------------------------------


def vacation_set(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(SetArgs, args)
    ctx.check_max_objects(request.object_count(), "maxObjectsInSet")
    user = account_of(ctx).user
    with user.vacation_lock, _session(ctx) as sieve:
        current = read_current(sieve)
        check_in_state(request.ifInState, current.state)
        writer = _Writer(sieve, current)
        results = apply_each(request, _no_create, writer.update_singleton, _no_destroy)
    _remember(user, writer.current.state, changed=writer.wrote)
    return {"accountId": ctx.account_id, "oldState": current.state,
            "newState": writer.current.state, **results}  # fmt: skip


_SINGLETON = "there is exactly one VacationResponse"


def _no_create(creation_id: str, obj: Any) -> None:
    raise Refused("singleton", _SINGLETON)


def _no_destroy(object_id: str) -> None:
    if object_id == SINGLETON:
        raise Refused("singleton", _SINGLETON)
    raise Refused("notFound")


class _Writer:
    """Applies one update to the server, and knows whether anything was written."""

    def __init__(self, sieve: ManageSieve, current: Current) -> None:
        self.sieve = sieve
        self.current = current
        self.wrote = False

    def update_singleton(self, object_id: str, patch: dict[str, Any]) -> None:
        if object_id != SINGLETON:
            raise Refused("notFound", "the only id is singleton")
        self.update(patch)

    def update(self, patch: dict[str, Any]) -> None:
        merged = patched(self.current.as_object(), patch)
        response = validated(merged)
        stored = self.current.stored
        if response == self.current.response and (stored is None or stored.response == response):
            return  # nothing to write; and no state to move
        if self.current.foreign:
            raise Refused(
                "forbidden",
                f'a Sieve script named "{SCRIPT_NAME}" exists that bridge did not write; '
                "rename or delete it first",
            )
        try:
            if response.isEnabled:
                self._enable(response)
            else:
                self._disable(response)
        except SieveCommandFailed as exc:
            raise _refusal(exc) from None
        except SieveUnavailable as exc:
            if self.wrote:
                raise MethodError(
                    "serverPartialFail", "the ManageSieve server went away part way; refetch"
                ) from exc
            raise

    def _enable(self, response: VacationResponse) -> None:
        current = self.current
        if current.active == SCRIPT_NAME:
            include = current.stored.include if current.stored else None
        else:
            include = current.active
        if include is not None and include not in current.names:
            include = None  # deleted meanwhile: no rules left to keep
        missing = needed_extensions(response, include) - self.sieve.extensions
        if "include" in missing:
            raise Refused(
                "forbidden",
                f'the Sieve server cannot include the active script "{include}" (no include '
                "extension), so a vacation response would stop its rules",
            )
        if missing:
            raise Refused("forbidden", f"the Sieve server lacks {', '.join(sorted(missing))}")
        if include is not None:
            problem = self._conflict(include)
            if problem is not None:
                raise Refused("forbidden", problem)
        self._store(render(response, include))
        if current.active != SCRIPT_NAME:
            self._activate(SCRIPT_NAME)

    def _disable(self, response: VacationResponse) -> None:
        current = self.current
        if current.active == SCRIPT_NAME:
            # The user's rules come back before anything else is written.
            previous = current.stored.include if current.stored else None
            self._activate(previous if previous in current.names else None)
        self._store(render(response, None))

    # Each write also moves ``current`` to what the server now holds, so the response's
    # newState needs no second LISTSCRIPTS and GETSCRIPT.

    def _store(self, script: str) -> None:
        self.sieve.put_script(SCRIPT_NAME, script)
        self.wrote = True
        names = self.current.names | {SCRIPT_NAME}
        self.current = replace(self.current, names=names, own=script, stored=read(script))

    def _activate(self, name: str | None) -> None:
        self.sieve.set_active(name)
        self.wrote = True
        self.current = replace(self.current, active=name)

    def _conflict(self, name: str) -> str | None:
        """Why the script ``name`` (and what it includes) cannot run beside a vacation
        action, or None. Scripts included from :global cannot be read, and are trusted."""
        seen: set[str] = set()
        todo = [name]
        while todo and len(seen) < MAX_CHECKED:
            script = todo.pop()
            if script in seen or script not in self.current.names or script == SCRIPT_NAME:
                continue
            seen.add(script)
            facts = analyse(self.sieve.get_script(script))
            clash = sorted(facts.extensions & CONFLICTING)
            if clash:
                where = "" if script == name else f' (through "{script}", which it includes)'
                return (
                    f'the active Sieve script "{name}"{where} uses {clash[0]}, which cannot '
                    "run beside a vacation reply (RFC 5230 §4.7); change that script first"
                )
            todo.extend(facts.personal_includes)
        return None


def _refusal(exc: SieveCommandFailed) -> Refused:
    code = exc.code or ""
    if code == "QUOTA/MAXSIZE":
        return Refused("tooLarge", "the vacation response is larger than the server's scripts")
    if code.startswith("QUOTA"):
        return Refused("overQuota", "the ManageSieve server has no room for another script")
    return Refused("forbidden", f"the ManageSieve server refused {exc.command}: {exc.text}")


# -- validation --------------------------------------------------------------------------------


def _has_nul_or_surrogate(value: str) -> bool:
    return "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)


def _subject_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return "must be a string or null"
    # The subject becomes a header field: no line may break it.
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in value):
        return "must be one line without control characters"
    return None


def _body_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return "must be a string or null"
    return "must not contain NUL" if _has_nul_or_surrogate(value) else None


def _date_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or parse_utc_date(value) is None:
        return "must be a UTCDate such as 2026-07-01T00:00:00Z, or null"
    return None


def validated(obj: dict[str, Any]) -> VacationResponse:
    """The patched object as a VacationResponse; invalidProperties naming every bad one."""
    problems: dict[str, str] = {key: "unknown property" for key in obj if key not in PROPERTIES}
    if obj.get("id") != SINGLETON:
        problems["id"] = "is server-set"
    if not isinstance(obj.get("isEnabled"), bool):
        problems["isEnabled"] = "must be true or false"
    checks = {"fromDate": _date_problem, "toDate": _date_problem, "subject": _subject_problem}
    checks |= {"textBody": _body_problem, "htmlBody": _body_problem}
    for key, check in checks.items():
        problem = check(obj.get(key))
        if problem is not None:
            problems[key] = problem
    if problems:
        description = "; ".join(f"{key} {problem}" for key, problem in sorted(problems.items()))
        raise Refused("invalidProperties", description, sorted(problems))
    return VacationResponse(**{key: obj.get(key) for key in PROPERTIES if key != "id"})
