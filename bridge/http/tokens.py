"""Access tokens bridge issues: for clients that speak only Bearer, and for browsers'
EventSource and WebSocket, which cannot send Authorization at all.

``POST /jmap/token`` (authenticated as any other request) hands out an opaque token, good
for ``token_lifetime`` seconds (an hour by default) as ``Authorization: Bearer`` on every
endpoint, and as ``?access_token=`` or the ``jmap_token`` cookie on /jmap/eventsource and
/jmap/ws. ``DELETE /jmap/token``, presenting the token, revokes it.

A token stands for the credentials it was issued for, password included, because every
upstream login needs the password again (the pool keeps only an HMAC of it). So tokens
live only in this process's memory, keyed by a digest of the token: nothing is written
anywhere, and a restart ends every token (clients ask for a new one). A token whose
password the upstream stops accepting is revoked when that is found out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from bridge.http.auth import bearer_token, invalid_token

if TYPE_CHECKING:
    from bridge.credentials import Credentials
    from bridge.http.front import HttpBridge

COOKIE = "jmap_token"


def _presented(request: Request) -> str | None:
    return (
        bearer_token(request.headers.get("authorization"))
        or request.query_params.get("access_token")
        or request.cookies.get(COOKIE)
    )


async def issue_token(request: Request) -> Response:
    bridge: HttpBridge = request.app.state.bridge
    credentials = await bridge.auth.authenticate(request)
    if isinstance(credentials, Response):
        return credentials
    token, expires = bridge.tokens.issue(credentials)
    body = msgspec.json.encode({"token": token, "expires": int(expires)})
    response = Response(body, media_type="application/json")
    set_token_cookie(response, token, bridge.tokens.lifetime)
    return response


def set_token_cookie(response: Response, token: str, lifetime: float) -> None:
    """The token as the cookie a browser sends to both listeners it opens, /jmap/eventsource
    and the WebSocket, /jmap/ws."""
    response.set_cookie(COOKIE, token, max_age=int(lifetime), httponly=True,
                        samesite="strict", path="/jmap")  # fmt: skip


def listener_token(bridge: HttpBridge, request: Request, credentials: Credentials) -> str | None:
    """A new token for a browser's listeners, unless the request's cookie already stands
    for these credentials. The Session answer sets it, so that a webmail of bridge's own
    site, which knows nothing of /jmap/token, opens eventSourceUrl logged in: its
    EventSource sends cookies but cannot send Authorization. Only browsers get one (they
    send Sec-Fetch-Site, and keep the cookie): other clients would leave a token behind
    at every Session fetch, and crowd out the user's others (PER_USER)."""
    if "sec-fetch-site" not in request.headers:
        return None
    held = request.cookies.get(COOKIE)
    if held and bridge.tokens.redeem(held) == credentials:
        return None
    token, _ = bridge.tokens.issue(credentials)
    return token


async def revoke_token(request: Request) -> Response:
    """The token presented (Bearer, ``?access_token=`` or the cookie) stops working."""
    bridge: HttpBridge = request.app.state.bridge
    token = _presented(request)
    if token is None or not bridge.tokens.revoke(token):
        return invalid_token()
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/jmap", httponly=True, samesite="strict")
    return response
