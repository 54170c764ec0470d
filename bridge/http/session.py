"""The Session resource of RFC 8620 §2."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec

from bridge.mail.account import account_id_for
from bridge.mail.capabilities import CORE, WEBSOCKET, account_capabilities, session_capabilities

if TYPE_CHECKING:
    from bridge.http.app import Bridge


def _session_body(bridge: Bridge, username: str) -> dict[str, Any]:
    account_id = account_id_for(username)
    account_caps = account_capabilities(bridge.features)
    session_caps = session_capabilities(bridge.features)
    return {
        "capabilities": {CORE: bridge.limits.to_capability(), **session_caps},
        "accounts": {
            account_id: {
                "name": username,
                "isPersonal": True,
                "isReadOnly": False,
                "accountCapabilities": account_caps,
            }
        },
        "primaryAccounts": {capability: account_id for capability in account_caps},
        "username": username,
    }


def session_state(bridge: Bridge, username: str) -> str:
    """Changes whenever anything else in the session object would."""
    encoded = msgspec.json.encode(_session_body(bridge, username), order="sorted")
    return hashlib.sha256(encoded).hexdigest()[:16]


def websocket_url(base_url: str) -> str:
    scheme, _, rest = base_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/jmap/ws"


def session_resource(bridge: Bridge, username: str, base_url: str) -> dict[str, Any]:
    # Absolute URLs: many clients do not resolve relative ones against the session URL.
    body = _session_body(bridge, username)
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
        "state": session_state(bridge, username),
    }
