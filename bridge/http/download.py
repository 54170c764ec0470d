"""Blob downloads (RFC 8620 §6.2): streamed, typed as asked, cached for good.

A blob is the client's to type, so it may be a message served as text/html: every download
says ``nosniff``, and markup types get a Content-Security-Policy sandbox, so a mail opened
from its download URL runs no script and loads nothing under bridge's origin.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bridge import deadline
from bridge.http.problems import error_response
from bridge.http.slots import UserSlots
from bridge.imap.errors import UpstreamError
from bridge.jmap import RequestError
from bridge.mail.account import Account
from bridge.mail.blobs import open_blob

if TYPE_CHECKING:
    from bridge.http.front import HttpBridge

_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")
# What a browser renders as a document that can run script: HTML, XHTML, SVG, any XML.
_MARKUP = re.compile(r"[^/]+/(?:html|[^/]*xml)", re.IGNORECASE)
SANDBOX = "sandbox; default-src 'none'"


def content_disposition(name: str) -> str:
    """attachment with the requested name, RFC 6266 style for names beyond ASCII."""
    cleaned = "".join(ch for ch in name if ch.isprintable() and ch not in '"\\/') or "download"
    ascii_name = cleaned.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(cleaned)}"


def download_headers(name: str, media_type: str) -> dict[str, str]:
    headers = {
        "Content-Disposition": content_disposition(name),
        # A blob id always names the same octets.
        "Cache-Control": "private, immutable, max-age=31536000",
        "X-Content-Type-Options": "nosniff",
    }
    if _MARKUP.fullmatch(media_type):
        headers["Content-Security-Policy"] = SANDBOX
    return headers


def _slots(request: Request) -> UserSlots:
    slots = getattr(request.app.state, "download_slots", None)
    if slots is None:
        slots = request.app.state.download_slots = UserSlots()
    return slots


def _not_found() -> Response:
    return Response(b"blob not found", status_code=404, media_type="text/plain")


async def download(request: Request) -> Response:
    bridge: HttpBridge = request.app.state.bridge
    # The login and the first chunk wait upstream within the request's deadline; the rest
    # streams at the client's pace, each FETCH bounded by upstream_timeout.
    with deadline.within(bridge.settings.request_timeout):
        return await _download(bridge, request)


async def _download(bridge: HttpBridge, request: Request) -> Response:
    credentials = await bridge.auth.authenticate(request)
    if isinstance(credentials, Response):
        return credentials
    user = await bridge.user(credentials.username)
    if request.path_params["account_id"] != user.account_id:
        return _not_found()
    requested_type = request.query_params.get("accept") or "application/octet-stream"
    media_type = requested_type if _MEDIA_TYPE.fullmatch(requested_type) else None
    slots = _slots(request)
    if not slots.acquire(credentials.username, bridge.settings.max_concurrent_downloads):
        return error_response(RequestError(
            "limit", 429, "too many concurrent downloads", "maxConcurrentDownloads"
        ))  # fmt: skip
    account = Account(user, bridge.pool, credentials.password, bridge.settings)
    chunks: Iterator[bytes] | None = None
    try:
        chunks = await run_in_threadpool(open_blob, account, request.path_params["blob_id"])
    except UpstreamError:
        return Response(b"upstream unavailable", status_code=503, headers={"Retry-After": "5"})
    finally:
        if chunks is None:
            account.close()
            slots.release(credentials.username)
    if chunks is None:
        return _not_found()

    def read() -> Iterator[bytes]:
        try:
            yield from chunks
        finally:
            account.close()

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in iterate_in_threadpool(read()):
                yield chunk
        finally:
            slots.release(credentials.username)

    media_type = media_type or "application/octet-stream"
    return StreamingResponse(
        stream(),
        media_type=media_type,
        headers=download_headers(request.path_params["name"], media_type),
    )
