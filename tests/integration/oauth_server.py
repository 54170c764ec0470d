"""A token introspection endpoint for tests: the authorization server both Dovecot and
bridge ask whether an access token is good, and whose it is.

It answers the two ways they ask: RFC 7662 (``POST`` with ``token=...``, as bridge asks)
and Dovecot's ``introspection_mode = auth`` (``GET`` with ``Authorization: Bearer``).
"""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.json_http import JsonHandler


class IntrospectionServer:
    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}  # token -> username
        # Tokens that this endpoint vouches for to bridge but the upstream is told are
        # inactive: a token revoked between bridge's check and its login.
        self.refused_upstream: set[str] = set()
        self.asked_by_bridge: list[str] = []
        self.asked_by_upstream: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/introspect"

    def answer(self, token: str, *, upstream: bool) -> dict[str, Any]:
        username = self.tokens.get(token)
        if username is None or (upstream and token in self.refused_upstream):
            return {"active": False}
        return {"active": True, "username": username, "token_type": "Bearer"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                owner.asked_by_upstream.append(token)
                self.reply_json(owner.answer(token, upstream=True))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                token = form.get("token", [""])[0]
                owner.asked_by_bridge.append(token)
                self.reply_json(owner.answer(token, upstream=False))

        return Handler

    def __enter__(self) -> IntrospectionServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
