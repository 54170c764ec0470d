"""The HTTP front end: session discovery, the API endpoint, and the error documents."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute

from bridge import deadline
from bridge.config import Settings
from bridge.http.cors import cors_middleware
from bridge.http.download import download
from bridge.http.drain import CLOSE_GRACE, close_within
from bridge.http.front import HttpBridge
from bridge.http.health import Readiness, healthz, readyz
from bridge.http.monitoring import RequestMetrics, metrics_listener
from bridge.http.problems import error_response, problem
from bridge.http.push import eventsource
from bridge.http.session import session_resource
from bridge.http.tokens import (
    issue_token,
    listener_token,
    revoke_token,
    set_token_cookie,
)
from bridge.http.upload import upload
from bridge.http.warmup import warm_up
from bridge.http.websocket import WEBSOCKET_PATH, websocket_endpoint
from bridge.imap.pool import ConnectionPool
from bridge.jmap import RequestError
from bridge.mail.account import UserData, UserRegistry
from bridge.store.health import StorageFull, StoreUnavailable

log = logging.getLogger("bridge.http")

JSON = "application/json"
API_PATH = "/jmap/api"
SESSION_PATH = "/jmap/session"


def json_response(body: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type=JSON)


async def well_known(request: Request) -> Response:
    return RedirectResponse(SESSION_PATH, status_code=307)


async def session(request: Request) -> Response:
    bridge: HttpBridge = request.app.state.bridge
    with deadline.within(bridge.settings.request_timeout):  # a first login waits upstream
        return await _session(bridge, request)


async def _session(bridge: HttpBridge, request: Request) -> Response:
    credentials = await bridge.auth.authenticate(request)
    if isinstance(credentials, Response):
        return credentials
    # A fresh process's first request would open the user's cache: now, while the answer
    # travels and the client turns round.
    bridge.webpush.preload(credentials, bridge.users)
    response = json_response(
        session_resource(bridge, credentials.username, bridge.base_url(request))
    )
    token = listener_token(bridge, request, credentials)
    if token is not None:
        set_token_cookie(response, token, bridge.tokens.lifetime)
    return response


async def api(request: Request) -> Response:
    bridge: HttpBridge = request.app.state.bridge
    with deadline.within(bridge.settings.request_timeout):  # the login counts too
        return await _api(bridge, request)


async def _api(bridge: HttpBridge, request: Request) -> Response:
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
    bridge: HttpBridge = request.app.state.bridge
    credentials = await bridge.auth.authenticate(request)
    if isinstance(credentials, Response):
        return credentials
    # On a request thread, in one hand-off: opening the user's cache (if not open) and
    # reading it, which waits for a sync's transaction (a first login's, the long ones
    # this answer is asked about during) and, on PostgreSQL, for the database.
    user, folders = await bridge.threads.run(_indexed_folders, bridge.users, credentials.username)
    return json_response(
        {"username": credentials.username, "indexing": user.indexer.state.running,
         "folders": folders}
    )  # fmt: skip


def _indexed_folders(
    users: UserRegistry, username: str
) -> tuple[UserData, dict[str, dict[str, int]]]:
    user = users.get(username)
    folders = {}
    for record in user.cache.mailboxes():
        if not record.selectable:
            continue
        total = record.status.messages if record.status else 0
        progress = user.indexer.state.folders.get(record.name)
        indexed = total if record.indexed else (progress.indexed if progress else 0)
        folders[record.name] = {"indexed": indexed, "total": total}
    return user, folders


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that left in the middle of its request body: nobody reads the answer, and
    it is no server error (no traceback, no 500 in the access log)."""
    return Response(status_code=400)


async def _storage_full(request: Request, exc: Exception) -> Response:
    """A full disk under the data directory (a new user's cache, say): nothing was
    written; 507 Insufficient Storage (RFC 4918 §11.5), one log line, no traceback."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return problem(507, "the server has no space left to store this request's data")


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """The store's database out of reach outside a method call (opening a user's store):
    503, as for the upstream, and one log line."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return problem(503, "the store's database is unavailable; try again later")


def create_app(settings: Settings, pool: ConnectionPool | None = None) -> Starlette:
    bridge = HttpBridge(settings, pool)
    # Set when shutdown begins (bridge.http.drain): event streams end, /readyz says 503.
    draining = asyncio.Event()
    listener = metrics_listener(bridge)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        bridge.webpush.start()
        bridge.hub.share()
        bridge.pool.start_reaper()
        if listener is not None:
            listener.start()
        await warm_up(settings, bridge.users.stores.check)
        yield
        draining.set()
        await bridge.webpush.stop()
        await close_within(bridge.close, CLOSE_GRACE)
        if listener is not None:
            listener.stop()

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
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
        middleware=[Middleware(RequestMetrics), *cors_middleware(settings.cors_origins)],
        exception_handlers={
            ClientDisconnect: _client_gone,
            StorageFull: _storage_full,
            StoreUnavailable: _store_unavailable,
        },
    )
    app.state.bridge = bridge
    app.state.draining = draining
    app.state.readiness = Readiness(
        Path(settings.data_dir), bridge.pool.config, bridge.users.stores.check
    )
    return app
