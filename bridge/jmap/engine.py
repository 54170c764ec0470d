"""The request engine: parse a Request, run its method calls in order, build the Response."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET

from bridge import deadline, metrics
from bridge.inline import NeedsWorker
from bridge.jmap.errors import MethodError, RequestError
from bridge.jmap.limits import (
    CoreLimits,
    RequestLimits,
    check_filter_size,
    check_max_objects,
    json_too_deep,
)
from bridge.jmap.references import resolve_references
from bridge.jmap.types import Invocation, Request, build_response, request_decoder

log = logging.getLogger("bridge.jmap")

ResponseArgs = dict[str, Any]
# The standard methods that take a filter (RFC 8620 §5.5, §5.6).
_QUERY_METHODS = ("/query", "/queryChanges")


@dataclass(frozen=True)
class MethodResult:
    """A handler's answer when one call emits more than one response, e.g. Email/copy with
    onSuccessDestroyOriginal: ``extra`` responses follow ``args`` under the same call id."""

    args: ResponseArgs
    extra: Sequence[tuple[str, ResponseArgs]] = ()


class CallContext:
    """What a handler sees of the request it runs in."""

    def __init__(self, run: _RequestRun, call_id: str, method_name: str) -> None:
        self._run = run
        self.account: Any = run.account
        self.account_id: str = run.account_id
        # Shared by every call of the request; a handler that creates a record adds it here.
        self.created_ids: dict[str, str] = run.created_ids
        self.using: frozenset[str] = run.using
        self.call_id = call_id
        self.method_name = method_name
        self.limits: CoreLimits = run.engine.limits
        self.request_limits: RequestLimits = run.engine.request_limits
        self.request_id: str = run.request_id

    def resolve_creation_id(self, value: str) -> str | None:
        """The real id for a ``#creationId`` reference, or None if it is not one or unknown."""
        if not value.startswith("#"):
            return None
        return self.created_ids.get(value[1:])

    def check_max_objects(self, count: int, limit_name: str) -> None:
        """``requestTooLarge`` if ``count`` exceeds "maxObjectsInGet" or "maxObjectsInSet"."""
        check_max_objects(self.limits, count, limit_name)

    def invoke(self, name: str, args: dict[str, Any]) -> list[tuple[str, ResponseArgs]]:
        """Make an implicit call, such as the Email/set that Email/copy makes to destroy the
        originals; returns its responses (an error response if it failed) for ``extra``."""
        return self._run.invoke(name, args, self.call_id)


Handler = Callable[[CallContext, dict[str, Any]], ResponseArgs | MethodResult]


@dataclass(frozen=True)
class MethodSpec:
    """A method the engine serves: ``capability`` must be in the request's ``using``, and
    when ``account_scoped`` the engine checks the ``accountId`` argument before the handler
    runs. The handler may raise MethodError; anything else it raises becomes serverFail,
    but NeedsWorker, which stops the request (bridge.inline). ``inline``: the method only
    reads, so a request of such methods may be tried on the event loop."""

    name: str
    capability: str
    handler: Handler
    account_scoped: bool = True
    inline: bool = False


class Engine:
    def __init__(
        self,
        limits: CoreLimits,
        capabilities: Iterable[str],
        methods: Iterable[MethodSpec],
        lenient_using: bool = False,
        request_limits: RequestLimits | None = None,
    ) -> None:
        self.limits = limits
        self.request_limits = request_limits or RequestLimits()
        self.capabilities = frozenset(capabilities)
        # Whether a served method runs when its capability is missing from "using".
        self.lenient_using = lenient_using
        self.methods: dict[str, MethodSpec] = {}
        for spec in methods:
            if spec.name in self.methods:
                raise ValueError(f"method {spec.name} registered twice")
            if spec.capability not in self.capabilities:
                raise ValueError(f"{spec.name} needs capability {spec.capability}, not served")
            self.methods[spec.name] = spec

    def parse_request(self, body: bytes) -> Request:
        """Decode and check a Request; every failure is a RequestError for the HTTP layer."""
        if len(body) > self.limits.max_size_request:
            raise RequestError(
                "limit", 400, "the request is larger than maxSizeRequest", "maxSizeRequest"
            )
        check_json_depth(body, self.request_limits)
        try:
            # msgspec skips unknown properties without decoding them, so check all of it.
            body.decode("utf-8")
            request = request_decoder.decode(body)
        except UnicodeDecodeError:
            raise RequestError("notJSON", 400, "the request is not UTF-8") from None
        except msgspec.ValidationError as exc:
            # Typed decoding stops at the first mismatch, before seeing all of the JSON.
            _check_json(body)
            raise RequestError("notRequest", 400, f"not a Request object: {exc}") from None
        except msgspec.DecodeError as exc:
            raise _not_json(exc) from None
        if len(request.methodCalls) > self.limits.max_calls_in_request:
            raise RequestError(
                "limit",
                400,
                f"more than {self.limits.max_calls_in_request} method calls",
                "maxCallsInRequest",
            )
        unknown = [uri for uri in request.using if uri not in self.capabilities]
        if unknown:
            raise RequestError(
                "unknownCapability",
                400,
                f"the request used capability {unknown[0]!r}, not supported by this server",
            )
        return request

    def may_run_inline(self, request: Request) -> bool:
        """Whether every call of ``request`` is of a method that only reads."""
        for name, _, _ in request.methodCalls:
            spec = self.methods.get(name)
            if spec is None or not spec.inline:
                return False
        return True

    def run(
        self,
        request: Request,
        account: Any,
        account_id: str,
        session_state: str,
        request_id: str = "",
    ) -> dict[str, Any]:
        """Process every call in order and return the Response object as plain data."""
        given = request.createdIds
        run = _RequestRun(
            self,
            account,
            account_id,
            dict(given) if given is not UNSET else {},
            frozenset(request.using),
            request_id,
        )
        for name, args, call_id in request.methodCalls:
            run.call(name, args, call_id)
        run.record_metrics()
        created_ids = run.created_ids if given is not UNSET else None
        return build_response(run.responses, created_ids, session_state)


def check_json_depth(body: bytes, limits: RequestLimits) -> None:
    """A ``limit`` RequestError for JSON nested deeper than ``limits`` allow."""
    depth = limits.max_json_depth
    if json_too_deep(body, depth):
        raise RequestError(
            "limit", 400, f"arrays and objects nested more than {depth} deep", "maxJsonDepth"
        )


def _not_json(exc: msgspec.DecodeError) -> RequestError:
    return RequestError("notJSON", 400, f"the request is not valid JSON: {exc}")


def _check_json(body: bytes) -> None:
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise _not_json(exc) from None


class _RequestRun:
    """The state of one request while its calls run."""

    def __init__(
        self,
        engine: Engine,
        account: Any,
        account_id: str,
        created_ids: dict[str, str],
        using: frozenset[str],
        request_id: str,
    ) -> None:
        self.engine = engine
        self.account = account
        self.account_id = account_id
        self.created_ids = created_ids
        self.using = using
        self.request_id = request_id
        self.responses: list[Invocation] = []
        # (method, result, seconds) of each call, counted once the request ran whole: one
        # moved from the event loop to a worker (NeedsWorker) starts over and counts once.
        self.observed: list[tuple[str, str, float | None]] = []

    def call(self, name: str, args: dict[str, Any], call_id: str) -> None:
        if deadline.expired():
            # The calls before used up the request's time: this one is not run.
            error = MethodError("serverUnavailable", "the request ran out of time before this call")
            self.responses.append(("error", error.to_response(), call_id))
            return
        spec = self.engine.methods.get(name)
        # A method of a capability the client did not opt in to is unknown to it (§3.3),
        # unless the server is lenient: a client that names the method knows it.
        if spec is None or not (spec.capability in self.using or self.engine.lenient_using):
            self.responses.append(("error", {"type": "unknownMethod"}, call_id))
            # Only registered names become label values: a client's invented one must not
            # add a series (bridge.metrics).
            self.observed.append(("unknown", "unknownMethod", None))
            return
        started = time.monotonic()
        responses = self._execute(spec, args, call_id, resolve=True)
        first_name, first_args = responses[0]
        result = first_args["type"] if first_name == "error" else "ok"
        self.observed.append((spec.name, result, time.monotonic() - started))
        for response_name, response_args in responses:
            self.responses.append((response_name, response_args, call_id))

    def record_metrics(self) -> None:
        for method, result, seconds in self.observed:
            metrics.JMAP_CALLS.labels(method, result).inc()
            if seconds is not None:
                metrics.JMAP_LATENCY.labels(method).observe(seconds)

    def invoke(
        self, name: str, args: dict[str, Any], call_id: str
    ) -> list[tuple[str, ResponseArgs]]:
        spec = self.engine.methods.get(name)
        if spec is None:
            raise ValueError(f"implicit call to unregistered method {name}")
        return self._execute(spec, args, call_id, resolve=False)

    def _execute(
        self, spec: MethodSpec, args: dict[str, Any], call_id: str, *, resolve: bool
    ) -> list[tuple[str, ResponseArgs]]:
        try:
            if resolve:
                args = resolve_references(args, self._lookup)
            if spec.account_scoped:
                self._check_account(args)
            if spec.name.endswith(_QUERY_METHODS) and "filter" in args:
                check_filter_size(args["filter"], self.engine.request_limits)
            result = spec.handler(CallContext(self, call_id, spec.name), args)
            return self._responses(spec.name, result)
        except MethodError as error:
            return [("error", error.to_response())]
        except NeedsWorker:
            raise
        except Exception:
            log.exception(
                "request %s: %s (call %r) failed", self.request_id or "-", spec.name, call_id
            )
            description = "unexpected server error"
            if self.request_id:
                description += f" (request {self.request_id})"
            return [("error", MethodError("serverFail", description).to_response())]

    def _check_account(self, args: dict[str, Any]) -> None:
        account_id = args.get("accountId")
        if not isinstance(account_id, str):
            raise MethodError("invalidArguments", "accountId must be a string")
        if account_id != self.account_id:
            raise MethodError("accountNotFound", f"no account {account_id!r}")

    @staticmethod
    def _responses(name: str, result: ResponseArgs | MethodResult) -> list[tuple[str, Any]]:
        if isinstance(result, MethodResult):
            responses = [(name, result.args), *result.extra]
        elif isinstance(result, dict):
            responses = [(name, result)]
        else:
            raise TypeError(f"{name} handler returned {type(result).__name__}")
        # Plain data from here on: references walk exactly what the client will see, and a
        # value JSON cannot carry fails this call rather than the whole response.
        return [(name, _plain_args(args)) for name, args in responses]

    def _lookup(self, call_id: str, name: str) -> dict[str, Any] | None:
        # §3.7 says to take the first response to the call and fail if its name differs;
        # matching on the name too lets a client reach a call's implicit second response
        # (the Email/set after Email/copy), and changes nothing else.
        for response_name, response_args, response_call_id in self.responses:
            if response_call_id == call_id and response_name == name:
                return response_args
        return None


def _plain_args(args: Any) -> dict[str, Any]:
    plain = msgspec.to_builtins(args)
    if not isinstance(plain, dict):
        raise TypeError(f"response arguments must be an object, not {type(args).__name__}")
    return plain
