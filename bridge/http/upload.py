"""Blob uploads (RFC 8620 §6.1): streamed to the user's upload store, never held whole.

RFC 8620 names no error for uploads beyond "SHOULD return a JSON problem details object"
(RFC 7807), so the limits answer the way the API endpoint does for its own limits: a
problem of type ``urn:ietf:params:jmap:error:limit`` naming the limit, with the HTTP status
that says what happened: 413 for ``maxSizeUpload``, 429 for ``maxConcurrentUpload``.

A user's stored uploads are bounded too (``max_upload_storage_per_user``): as RFC 8620 §6
asks, a new upload makes room by deleting that user's oldest uploads; only when uploads
still in progress leave no room does it fail, 413 with limit ``maxUploadStorage``.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from bridge import deadline
from bridge.http.problems import error_response, problem
from bridge.http.slots import UserSlots
from bridge.jmap import RequestError
from bridge.store.health import is_full
from bridge.store.uploads import DEFAULT_TYPE, UploadedBlob, UploadWriter

if TYPE_CHECKING:
    from bridge.http.front import HttpBridge

log = logging.getLogger("bridge.http")

# Written to disk in pieces of this size: one thread hop per piece, not per network read.
FLUSH_SIZE = 1 << 20
# type "/" subtype, then anything printable (parameters), within a sane length.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(;[ -~]*)?")
_MAX_TYPE_LENGTH = 255


class _TooLarge(Exception):
    pass


class _OverQuota(Exception):
    pass


def _limit_problem(status: int, detail: str, limit: str) -> Response:
    return error_response(RequestError("limit", status, detail, limit))


def _slots(request: Request) -> UserSlots:
    slots = getattr(request.app.state, "upload_slots", None)
    if slots is None:
        slots = request.app.state.upload_slots = UserSlots()
    return slots


def media_type_of(header: str | None) -> str:
    """The upload's type as the client gave it; the default when absent or not a type."""
    value = (header or "").strip()
    if len(value) > _MAX_TYPE_LENGTH or not _MEDIA_TYPE.fullmatch(value):
        return DEFAULT_TYPE
    return value


async def upload(request: Request) -> Response:
    bridge: HttpBridge = request.app.state.bridge
    # The login waits upstream, within the request's deadline; the body is the client's
    # to send at its pace (maxSizeUpload bounds it, not time).
    with deadline.within(bridge.settings.request_timeout):
        credentials = await bridge.auth.authenticate(request)
    if isinstance(credentials, Response):
        return credentials
    user = await bridge.user(credentials.username)
    if request.path_params["account_id"] != user.account_id:
        return problem(404, "no such account")
    limit = bridge.limits.max_size_upload
    too_large = f"upload is larger than maxSizeUpload ({limit} octets)"
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return _limit_problem(413, too_large, "maxSizeUpload")
    media_type = media_type_of(request.headers.get("content-type"))
    slots = _slots(request)
    if not slots.acquire(credentials.username, bridge.limits.max_concurrent_upload):
        return _limit_problem(429, "too many concurrent uploads", "maxConcurrentUpload")
    try:
        writer = await run_in_threadpool(user.uploads.begin)
        try:
            quota = bridge.settings.max_upload_storage_per_user
            blob = await _receive(request, writer, limit, media_type, quota)
        except BaseException:
            # Synchronous on purpose: it must run even when the request is cancelled, and
            # it is only a close and an unlink.
            writer.abort()
            raise
    except _TooLarge:
        return _limit_problem(413, too_large, "maxSizeUpload")
    except _OverQuota:
        detail = "no room left in this user's upload storage"
        return _limit_problem(413, detail, "maxUploadStorage")
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening any more
    except OSError as exc:
        if is_full(exc):
            log.warning("no space to store an upload of %s: %s", credentials.username, exc)
            return problem(507, "no space left to store the upload")
        log.exception("could not store an upload of %s", credentials.username)
        return problem(500, "could not store the upload")
    finally:
        slots.release(credentials.username)
    body = {"accountId": user.account_id, "blobId": blob.blob_id, "type": blob.type,
            "size": blob.size}  # fmt: skip
    return Response(msgspec.json.encode(body), status_code=201, media_type="application/json")


async def _receive(
    request: Request, writer: UploadWriter, limit: int, media_type: str, quota: int
) -> UploadedBlob:
    """Copy the body to ``writer``, refusing it as soon as it passes ``limit``: at most
    FLUSH_SIZE octets are held in memory at any time, whatever the limit. Each piece
    first makes room for itself in the user's ``quota``."""
    size = 0
    pending = bytearray()
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        pending += chunk
        if len(pending) >= FLUSH_SIZE:
            await _write(writer, bytes(pending), quota)
            pending.clear()
    if pending:
        await _write(writer, bytes(pending), quota)
    return await run_in_threadpool(writer.commit, media_type)


async def _write(writer: UploadWriter, data: bytes, quota: int) -> None:
    if not await run_in_threadpool(writer.write_within, data, quota):
        raise _OverQuota
