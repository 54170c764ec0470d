"""The Session resource of RFC 8620 §2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.mail.capabilities import WEBSOCKET

if TYPE_CHECKING:
    from bridge.core import Bridge


def websocket_url(base_url: str) -> str:
    scheme, _, rest = base_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/jmap/ws"


def session_resource(bridge: Bridge, username: str, base_url: str) -> dict[str, Any]:
    # Absolute URLs: many clients do not resolve relative ones against the session URL.
    body = bridge.session_body(username)
    # RFC 8887 §3. Like apiUrl, its URL follows the request, so it is left out of the state.
    body["capabilities"][WEBSOCKET] = {"url": websocket_url(base_url), "supportsPush": True}
    return {
        **body,
        "apiUrl": f"{base_url}/jmap/api",
        "downloadUrl": (
            f"{base_url}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}"
        ),
        "uploadUrl": f"{base_url}/jmap/upload/{{accountId}}/",
        "eventSourceUrl": (
            f"{base_url}/jmap/eventsource?types={{types}}&closeafter={{closeafter}}&ping={{ping}}"
        ),
        "state": bridge.session_state(username),
    }
