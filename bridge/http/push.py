"""Push over EventSource (RFC 8620 §7.3): StateChange events as a user's states move.

States move when a request syncs or writes, or when the user's watcher (running while any
stream of the user is open) finds an upstream change: each publishes the user's current
states, and each open stream forwards the types it asked for. The event id encodes all
the states, so a client that reconnects with a stale Last-Event-ID hears at once what it
missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from bridge.http.problems import error_response, problem
from bridge.http.tokens import COOKIE
from bridge.jmap import RequestError
from bridge.states import States, moved

if TYPE_CHECKING:
    from bridge.credentials import Credentials
    from bridge.http.front import HttpBridge

PING_MIN, PING_MAX = 1, 300  # RFC 8620 §7.3: a minimum of at most 30, a maximum of at least 300


def event_id(states: States) -> str:
    return ".".join(f"{name}:{state}" for name, state in sorted(states.items()))


def _state_event(account_id: str, changed: States, every: States) -> bytes:
    """A state event: the changed types' states; its id stands for all of them."""
    change = {"@type": "StateChange", "changed": {account_id: changed}}
    return (
        b"event: state\nid: "
        + event_id(every).encode()
        + b"\ndata: "
        + (msgspec.json.encode(change) + b"\n\n")
    )


async def eventsource(request: Request) -> Response:
    bridge: HttpBridge = request.app.state.bridge
    token = request.query_params.get("access_token") or request.cookies.get(COOKIE)
    credentials = bridge.tokens.redeem(token) if token else None
    if credentials is None:
        credentials = await bridge.auth.authenticate(request)
        if isinstance(credentials, Response):
            return credentials
    if request.app.state.draining.is_set():
        return problem(503, "bridge is shutting down")
    params = request.query_params
    types_param = params.get("types", "*")
    wanted = None if types_param == "*" else set(filter(None, types_param.split(",")))
    closeafter = params.get("closeafter", "no")
    if closeafter not in ("state", "no"):
        return problem(400, "closeafter must be state or no")
    try:
        ping = int(params.get("ping", "0"))
    except ValueError:
        return problem(400, "ping must be a number of seconds")
    if ping < 0:
        return problem(400, "ping must not be negative")
    interval = min(max(ping, PING_MIN), PING_MAX) if ping else 0
    limit = bridge.settings.max_event_streams_per_user
    if not bridge.event_streams.acquire(credentials.username, limit):
        return error_response(RequestError(
            "limit", 429, f"at most {limit} event streams per user", "maxEventStreams"
        ))  # fmt: skip
    try:
        return await _event_stream(request, bridge, credentials, wanted, closeafter, interval)
    except BaseException:
        bridge.event_streams.release(credentials.username)
        raise


async def _event_stream(
    request: Request,
    bridge: HttpBridge,
    credentials: Credentials,
    wanted: set[str] | None,
    closeafter: str,
    interval: int,
) -> Response:
    user = await bridge.user(credentials.username)
    queue = bridge.hub.listen(user, credentials.password)
    draining: asyncio.Event = request.app.state.draining
    loop = asyncio.get_running_loop()
    try:
        current = await run_in_threadpool(bridge.states_of, user)
    except BaseException:
        bridge.hub.stop(credentials.username, queue)
        raise
    last_seen = request.headers.get("last-event-id")

    async def stream() -> AsyncIterator[bytes]:
        sent = dict(current)
        if last_seen is not None and last_seen != event_id(current):
            # A reconnect with an old id: say at once what moved meanwhile.
            yield _state_event(user.account_id, moved(current, {}, wanted), current)
            if closeafter == "state":
                return
        # A ping is due when ``interval`` passes with no event sent (RFC 8620 §7.3),
        # however often the watcher reports unchanged states meanwhile.
        next_ping = loop.time() + interval
        while True:
            timeout = max(0.0, next_ping - loop.time()) if interval else None
            try:
                states = await _next_states(queue, draining, timeout)
            except TimeoutError:
                yield b"event: ping\ndata: " + msgspec.json.encode({"interval": interval})
                yield b"\n\n"
                next_ping = loop.time() + interval
                continue
            if states is None:
                return  # shutting down: the client reconnects, to another instance maybe
            changed = moved(states, sent, wanted)
            sent.update(states)
            if not changed:
                continue
            yield _state_event(user.account_id, changed, states)
            next_ping = loop.time() + interval
            if closeafter == "state":
                return

    def closed() -> None:
        bridge.hub.stop(credentials.username, queue)
        bridge.event_streams.release(credentials.username)

    return _ClosingStream(
        stream(),
        closed,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _next_states(
    queue: asyncio.Queue[States], draining: asyncio.Event, timeout: float | None
) -> States | None:
    """The next states from ``queue``, or None once ``draining`` is set; TimeoutError
    after ``timeout`` seconds of neither."""
    getting = asyncio.ensure_future(queue.get())
    stopping = asyncio.ensure_future(draining.wait())
    try:
        done, _ = await asyncio.wait(
            {getting, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        getting.cancel()  # no states are lost: a cancelled get() takes nothing
        stopping.cancel()
    if getting in done:
        return getting.result()
    if stopping in done:
        return None
    raise TimeoutError


class _ClosingStream(StreamingResponse):
    """A stream that runs ``closed`` once it ends, however it ends: finished, the client
    gone (even before the first octet), or cancelled at shutdown."""

    def __init__(self, content: AsyncIterator[bytes], closed: Callable[[], None],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(content, **kwargs)
        self._closed = closed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._closed()
