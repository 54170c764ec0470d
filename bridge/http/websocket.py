"""JMAP over WebSocket (RFC 8887) at /jmap/ws, subprotocol "jmap".

The upgrade request authenticates as /jmap/api does (Basic), or with an access token from
/jmap/token (``?access_token=`` or the ``jmap_token`` cookie), since browsers cannot set
headers on a WebSocket. Browsers do send cookies and cached Basic credentials on their
own, whichever page opens the socket: those are taken only from a page of bridge's own
origin (or one listed in cors_origins), so another site cannot open a socket in its
visitor's name.

Each text message is one JMAP message. A Request runs through the same path as
/jmap/api (``Bridge.execute``), one after another, and gets its Response; a message that
is not a good Request gets a RequestError, and the socket stays open. Push (§4.3.5):
WebSocketPushEnable puts the socket on the user's StateHub and joins the user's watcher;
each StateChange carries a pushState that stands for all the user's states, and an
enable that hands one back first hears what moved since.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.credentials import Credentials
from bridge.http.problems import problem
from bridge.http.push import event_id
from bridge.http.tokens import COOKIE
from bridge.jmap import RequestError, check_json_depth
from bridge.states import States, moved

if TYPE_CHECKING:
    from bridge.http.front import HttpBridge
    from bridge.mail.account import UserData

log = logging.getLogger("bridge.http")

WEBSOCKET_PATH = "/jmap/ws"
SUBPROTOCOL = "jmap"
DENIAL = "websocket.http.response"  # the ASGI extension for an HTTP answer to an upgrade


class _Message(msgspec.Struct):
    """What every client message has (RFC 8887 §4.3.1); the rest depends on the type."""

    type: str = msgspec.field(name="@type")
    id: str | None = None  # a Request's, echoed as requestId


class _PushEnable(msgspec.Struct):
    dataTypes: list[str] | None = None
    pushState: str | None = None


_message_decoder = msgspec.json.Decoder(_Message)
_push_enable_decoder = msgspec.json.Decoder(_PushEnable)


def parse_push_state(push_state: str) -> States:
    """The states a pushState (an ``event_id``) stands for; unknown parts are dropped."""
    states: States = {}
    for part in push_state.split("."):
        name, sep, state = part.partition(":")
        if sep:
            states[name] = state
    return states


def _same_origin(bridge: HttpBridge, websocket: WebSocket) -> bool:
    """Whether the page may use what its browser sends by itself: bridge's own origin, or
    one cors_origins trusts with credentials (a "*" there matches no origin)."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser: nothing is sent on the user's behalf
    if origin in bridge.settings.cors_origins:
        return True
    return urlsplit(origin).netloc.lower() == urlsplit(bridge.base_url(websocket)).netloc.lower()


async def _authenticate(bridge: HttpBridge, websocket: WebSocket) -> Credentials | Response:
    token = websocket.query_params.get("access_token")
    credentials = bridge.tokens.redeem(token) if token else None
    if credentials is not None:
        return credentials  # a page had to ask for it: it is no ambient credential
    if not _same_origin(bridge, websocket):
        return problem(403, "another origin's page needs an access token (POST /jmap/token)")
    cookie = websocket.cookies.get(COOKIE)
    credentials = bridge.tokens.redeem(cookie) if cookie else None
    return credentials or await bridge.auth.authenticate(websocket)


async def _deny(websocket: WebSocket, response: Response) -> None:
    if DENIAL in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=1008)


async def websocket_endpoint(websocket: WebSocket) -> None:
    bridge: HttpBridge = websocket.app.state.bridge
    if SUBPROTOCOL not in websocket.scope.get("subprotocols", []):
        await _deny(websocket, problem(400, "the jmap subprotocol is required (RFC 8887)"))
        return
    credentials = await _authenticate(bridge, websocket)
    if isinstance(credentials, Response):
        await _deny(websocket, credentials)
        return
    await websocket.accept(subprotocol=SUBPROTOCOL)
    user = await bridge.user(credentials.username)
    connection = _Connection(bridge, websocket, credentials, user)
    try:
        await connection.serve()
    except WebSocketDisconnect:
        pass  # gone while an answer was on its way
    finally:
        connection.disable_push()


@dataclass(eq=False)
class _Push:
    wanted: set[str] | None  # None: every type
    queue: asyncio.Queue[States]
    sent: States = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def news(self, states: States) -> States:
        """The wanted types whose states moved; ``sent`` takes in all of ``states``."""
        changed = moved(states, self.sent, self.wanted)
        self.sent.update(states)
        return changed


class _Connection:
    def __init__(
        self, bridge: HttpBridge, websocket: WebSocket, credentials: Credentials, user: UserData
    ) -> None:
        self.bridge = bridge
        self.websocket = websocket
        self.credentials = credentials
        self.user = user
        self._send_lock = asyncio.Lock()
        self._push: _Push | None = None

    async def serve(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self._error(RequestError("notJSON", 400, "JMAP messages are text frames"))
                continue
            await self._handle(text.encode())

    async def _handle(self, body: bytes) -> None:
        limit = self.bridge.limits.max_size_request
        if len(body) > limit:
            await self._error(
                RequestError("limit", 400, "the message is larger than maxSizeRequest",
                             "maxSizeRequest")
            )  # fmt: skip
            return
        try:
            check_json_depth(body, self.bridge.engine.request_limits)
        except RequestError as error:
            await self._error(error)
            return
        try:
            message = _message_decoder.decode(body)
        except msgspec.ValidationError as exc:
            await self._error(_malformed(body, f"not a JMAP WebSocket message: {exc}"))
            return
        except msgspec.DecodeError as exc:
            await self._error(RequestError("notJSON", 400, f"not valid JSON: {exc}"))
            return
        if message.type == "Request":
            await self._request(body, message.id)
        elif message.type == "WebSocketPushEnable":
            try:
                enable = _push_enable_decoder.decode(body)
            except msgspec.ValidationError as exc:
                await self._error(RequestError("notRequest", 400, f"bad push enable: {exc}"))
                return
            await self._enable_push(enable)
        elif message.type == "WebSocketPushDisable":
            self.disable_push()
        else:
            detail = f"unknown @type {message.type!r}"
            await self._error(RequestError("notRequest", 400, detail), message.id)

    async def _request(self, body: bytes, request_id: str | None) -> None:
        try:
            result = await self.bridge.execute(self.credentials, body)
        except RequestError as error:
            await self._error(error, request_id)
            return
        except Exception:
            log.exception("WebSocket request of %s failed", self.credentials.username)
            await self._error(RequestError("serverFail", 500, "unexpected server error"),
                              request_id)  # fmt: skip
            return
        response: dict[str, Any] = {"@type": "Response"}
        if request_id is not None:
            response["requestId"] = request_id
        await self._send({**response, **result})

    async def _enable_push(self, enable: _PushEnable) -> None:
        wanted = None if enable.dataTypes is None else set(enable.dataTypes)
        if self._push is None:
            queue = self.bridge.hub.listen(self.user, self.credentials.password)
            push = self._push = _Push(wanted, queue)
        else:
            push = self._push
            push.wanted = wanted
        current = await run_in_threadpool(self.bridge.states_of, self.user)
        if enable.pushState is not None:
            # §4.3.5.2: a client that names the last pushState it saw hears what it missed.
            push.sent = parse_push_state(enable.pushState)
            changed = push.news(current)
            if changed:
                await self._send_state_change(changed, push.sent)
        push.sent = dict(current)
        if push.task is None:
            push.task = asyncio.create_task(self._forward(push))

    def disable_push(self) -> None:
        push, self._push = self._push, None
        if push is None:
            return
        if push.task is not None:
            push.task.cancel()
        self.bridge.hub.stop(self.credentials.username, push.queue)

    async def _forward(self, push: _Push) -> None:
        try:
            while True:
                states = await push.queue.get()
                changed = push.news(states)
                if changed:
                    await self._send_state_change(changed, push.sent)
        except (WebSocketDisconnect, RuntimeError):
            return  # the socket closed under us; serve() sees the disconnect and cleans up

    async def _send_state_change(self, changed: States, every: States) -> None:
        await self._send({
            "@type": "StateChange",
            "changed": {self.user.account_id: changed},
            "pushState": event_id(every),
        })  # fmt: skip

    async def _error(self, error: RequestError, request_id: str | None = None) -> None:
        message: dict[str, Any] = {"@type": "RequestError"}
        if request_id is not None:
            message["requestId"] = request_id
        await self._send({**message, **error.to_problem()})

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:  # a push and a response must not interleave
            await self.websocket.send_text(msgspec.json.encode(message).decode())


def _malformed(body: bytes, detail: str) -> RequestError:
    """notJSON if the message is not JSON at all; otherwise notRequest."""
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return RequestError("notJSON", 400, f"not valid JSON: {exc}")
    return RequestError("notRequest", 400, detail)
