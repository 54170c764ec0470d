"""Problem details (RFC 7807) for HTTP answers that are not JMAP responses."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from starlette.responses import Response

from bridge.jmap import RequestError

PROBLEM = "application/problem+json"


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    body = {"type": "about:blank", "status": status, "detail": detail}
    return Response(msgspec.json.encode(body), status, headers=headers, media_type=PROBLEM)


def error_response(error: RequestError) -> Response:
    """A request-level error (RFC 8620 §3.6.1), with its ``limit`` where it has one."""
    return Response(msgspec.json.encode(error.to_problem()), error.status, media_type=PROBLEM)
