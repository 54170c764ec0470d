"""The HTTP front end: session discovery, the API endpoint, and the error documents."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute

from bridge import deadline
from bridge.config import Settings
from bridge.http.auth import Authenticator, Credentials
from bridge.http.bearer import OAuthIdentity
from bridge.http.cors import cors_middleware
from bridge.http.download import download
from bridge.http.problems import error_response, problem
from bridge.http.push import StateHub, eventsource
from bridge.http.session import session_resource, session_state
from bridge.http.slots import UserSlots
from bridge.http.tokens import (
    TokenStore,
    issue_token,
    listener_token,
    revoke_token,
    set_token_cookie,
)
from bridge.http.upload import upload
from bridge.http.warmup import warm_up
from bridge.http.websocket import WEBSOCKET_PATH, websocket_endpoint
from bridge.imap.login_case import LoginCase
from bridge.imap.pool import ConnectionPool
from bridge.jmap import CoreLimits, Engine, RequestError
from bridge.mail import registered_methods
from bridge.mail.account import Account, UserData, UserRegistry
from bridge.mail.capabilities import CORE, WEBSOCKET, Features, session_capabilities
from bridge.mail.watcher import Watchers
from bridge.store.health import StorageFull
from bridge.webpush.service import WebPush

log = logging.getLogger("bridge.http")

JSON = "application/json"
API_PATH = "/jmap/api"
SESSION_PATH = "/jmap/session"


def json_response(body: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type=JSON)


class Bridge:
    """Everything one running bridge shares across requests."""

    def __init__(self, settings: Settings, pool: ConnectionPool | None = None) -> None:
        self.settings = settings
        self.limits = CoreLimits()
        self.pool = pool or ConnectionPool(
            settings.imap_endpoint,
            max_open_per_user=settings.pool_connections_per_user,
            idle_timeout=settings.pool_idle_timeout,
        )
        self.users = UserRegistry(Path(settings.data_dir))
        self.tokens = TokenStore(settings.token_lifetime)
        self.auth = Authenticator(
            self.pool,
            LoginCase(settings.login_case),
            tokens=self.tokens,
            oauth=OAuthIdentity.from_settings(settings),
        )
        self.features = Features(
            quota=settings.upstream_quota,
            submission=settings.submission_port is not None,
            vacation=settings.sieve_port is not None,
        )
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.event_streams = UserSlots()
        self.watchers = Watchers(self.pool, settings)
        self.hub = StateHub(self.watchers)
        self.webpush = WebPush(self.hub, settings.push_allow_private)
        capabilities = {CORE, WEBSOCKET, *session_capabilities(self.features)}
        methods = registered_methods(self.features, push=self.webpush)
        self.engine = Engine(self.limits, capabilities, methods, settings.lenient_using)

    @staticmethod
    def states_of(user: UserData) -> dict[str, str]:
        return user.states()

    def slot(self, username: str) -> asyncio.Semaphore:
        slot = self._slots.get(username)
        if slot is None:
            slot = self._slots[username] = asyncio.Semaphore(self.limits.max_concurrent_requests)
        return slot

    async def execute(self, credentials: Credentials, body: bytes) -> dict[str, Any]:
        """Parse and run one JMAP Request of an authenticated user: the one path behind
        /jmap/api and the WebSocket. A request rejected whole raises RequestError."""
        with deadline.within(self.settings.request_timeout):
            return await self._execute(credentials, body)

    async def _execute(self, credentials: Credentials, body: bytes) -> dict[str, Any]:
        jmap_request = self.engine.parse_request(body)
        slot = self.slot(credentials.username)
        if slot.locked():
            raise RequestError(
                "limit", 400, "too many concurrent requests", "maxConcurrentRequests"
            )
        async with slot:
            await self.webpush.before_request(credentials, self.users)
            result, states = await run_in_threadpool(_run, self, credentials, jmap_request)
        self.hub.publish(credentials.username, states)
        await self.webpush.after_request(credentials, self.users)
        return result

    def base_url(self, request: HTTPConnection) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    def close(self) -> None:
        self.pool.stop_reaper()
        self.watchers.stop_all()
        self.pool.close_all()
        self.users.close()


async def well_known(request: Request) -> Response:
    return RedirectResponse(SESSION_PATH, status_code=307)


async def session(request: Request) -> Response:
    bridge: Bridge = request.app.state.bridge
    credentials = await bridge.auth.authenticate(request)
    if isinstance(credentials, Response):
        return credentials
    response = json_response(
        session_resource(bridge, credentials.username, bridge.base_url(request))
    )
    token = listener_token(bridge, request, credentials)
    if token is not None:
        set_token_cookie(response, token, bridge.tokens.lifetime)
    return response


async def api(request: Request) -> Response:
    bridge: Bridge = request.app.state.bridge
    with deadline.within(bridge.settings.request_timeout):  # the login counts too
        return await _api(bridge, request)


async def _api(bridge: Bridge, request: Request) -> Response:
    credentials = await bridge.auth.authenticate(request)
    if isinstance(credentials, Response):
        return credentials
    limit = bridge.limits.max_size_request
    try:
        _check_json_type(request.headers.get("content-type"))
        body = await _read_limited(request, limit)
        result = await bridge.execute(credentials, body)
    except RequestError as error:
        return error_response(error)
    return json_response(result)


def _run(
    bridge: Bridge, credentials: Credentials, jmap_request: object
) -> tuple[dict[str, object], dict[str, str]]:
    """The response, and the user's states after it (for push)."""
    user = bridge.users.get(credentials.username)
    request_id = secrets.token_hex(6)
    state = session_state(bridge, credentials.username)
    with Account(user, bridge.pool, credentials.password, bridge.settings) as account:
        result = bridge.engine.run(jmap_request, account, user.account_id, state, request_id)
    return result, user.states()


def _check_json_type(content_type: str | None) -> None:
    """notJSON unless the body is declared application/json (RFC 8620 §3.6.1); parameters
    such as the "; charset=utf-8" browsers add are fine. Being strict also keeps another
    site's form or no-cors fetch (text/plain, or no type: neither preflighted) from running
    methods with Basic credentials the browser cached for bridge."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type != JSON:
        shown = content_type or "none"
        raise RequestError("notJSON", 400, f"the Content-Type must be {JSON}, not {shown}")


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = RequestError(
        "limit", 400, "request is larger than maxSizeRequest", "maxSizeRequest"
    )
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def status(request: Request) -> Response:
    """How far indexing of the user's folders has come (the first login to a big account
    answers before every folder is indexed)."""
    bridge: Bridge = request.app.state.bridge
    credentials = await bridge.auth.authenticate(request)
    if isinstance(credentials, Response):
        return credentials
    user = bridge.users.get(credentials.username)
    folders = {}
    for record in user.cache.mailboxes():
        if not record.selectable:
            continue
        total = record.status.messages if record.status else 0
        progress = user.indexer.state.folders.get(record.name)
        indexed = total if record.indexed else (progress.indexed if progress else 0)
        folders[record.name] = {"indexed": indexed, "total": total}
    return json_response(
        {"username": credentials.username, "indexing": user.indexer.state.running,
         "folders": folders}
    )  # fmt: skip


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that left in the middle of its request body: nobody reads the answer, and
    it is no server error (no traceback, no 500 in the access log)."""
    return Response(status_code=400)


async def _storage_full(request: Request, exc: Exception) -> Response:
    """A full disk under the data directory (a new user's cache, say): nothing was
    written; 507 Insufficient Storage (RFC 4918 §11.5), one log line, no traceback."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return problem(507, "the server has no space left to store this request's data")


def create_app(settings: Settings, pool: ConnectionPool | None = None) -> Starlette:
    bridge = Bridge(settings, pool)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        bridge.webpush.start()
        bridge.pool.start_reaper()
        await warm_up(settings)
        yield
        await bridge.webpush.stop()
        await run_in_threadpool(bridge.close)

    app = Starlette(
        routes=[
            Route("/.well-known/jmap", well_known, methods=["GET"]),
            Route(SESSION_PATH, session, methods=["GET"]),
            Route(API_PATH, api, methods=["POST"]),
            Route("/jmap/status", status, methods=["GET"]),
            Route("/jmap/download/{account_id}/{blob_id}/{name}", download, methods=["GET"]),
            Route("/jmap/upload/{account_id}/", upload, methods=["POST"]),
            Route("/jmap/eventsource", eventsource, methods=["GET"]),
            Route("/jmap/token", issue_token, methods=["POST"]),
            Route("/jmap/token", revoke_token, methods=["DELETE"]),
            WebSocketRoute(WEBSOCKET_PATH, websocket_endpoint),
        ],
        lifespan=lifespan,
        middleware=cors_middleware(settings.cors_origins),
        exception_handlers={ClientDisconnect: _client_gone, StorageFull: _storage_full},
    )
    app.state.bridge = bridge
    return app
