"""Blob downloads (RFC 8620 §6.2): streamed, typed as asked, cached for good."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bridge.imap.errors import UpstreamError
from bridge.mail.account import Account
from bridge.mail.blobs import open_blob

if TYPE_CHECKING:
    from bridge.http.app import Bridge

_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


def content_disposition(name: str) -> str:
    """attachment with the requested name, RFC 6266 style for names beyond ASCII."""
    cleaned = "".join(ch for ch in name if ch.isprintable() and ch not in '"\\/') or "download"
    ascii_name = cleaned.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(cleaned)}"


def _not_found() -> Response:
    return Response(b"blob not found", status_code=404, media_type="text/plain")


async def download(request: Request) -> Response:
    bridge: Bridge = request.app.state.bridge
    credentials = await bridge.auth.authenticate(request)
    if isinstance(credentials, Response):
        return credentials
    user = bridge.users.get(credentials.username)
    if request.path_params["account_id"] != user.account_id:
        return _not_found()
    requested_type = request.query_params.get("accept") or "application/octet-stream"
    media_type = requested_type if _MEDIA_TYPE.fullmatch(requested_type) else None
    account = Account(user, bridge.pool, credentials.password)
    try:
        chunks = await run_in_threadpool(open_blob, account, request.path_params["blob_id"])
    except UpstreamError:
        account.close()
        return Response(b"upstream unavailable", status_code=503, headers={"Retry-After": "5"})
    if chunks is None:
        account.close()
        return _not_found()

    def stream() -> Iterator[bytes]:
        try:
            yield from chunks
        finally:
            account.close()

    return StreamingResponse(
        stream(),
        media_type=media_type or "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(request.path_params["name"]),
            # A blob id always names the same octets.
            "Cache-Control": "private, immutable, max-age=31536000",
        },
    )
