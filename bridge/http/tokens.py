"""Short-lived access tokens for browsers' EventSource and WebSocket, which cannot send
Authorization.

``POST /jmap/token`` (Basic auth) hands out an opaque token; ``/jmap/eventsource`` and
``/jmap/ws`` take it as ``?access_token=`` or the ``jmap_token`` cookie. Tokens live only in
this process's memory, each for one user, for an hour: the password they stand for (which
the upstream watcher needs to log in) is never written anywhere.
"""

from __future__ import annotations

import secrets
import threading
import time

from bridge.http.auth import Credentials

LIFETIME = 3600.0
COOKIE = "jmap_token"


class TokenStore:
    def __init__(self, lifetime: float = LIFETIME) -> None:
        self.lifetime = lifetime
        self._tokens: dict[str, tuple[Credentials, float]] = {}
        self._lock = threading.Lock()

    def issue(self, credentials: Credentials) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires = time.time() + self.lifetime
        with self._lock:
            self._forget_expired()
            self._tokens[token] = (credentials, expires)
        return token, expires

    def redeem(self, token: str) -> Credentials | None:
        with self._lock:
            found = self._tokens.get(token)
            if found is None or found[1] < time.time():
                self._tokens.pop(token, None)
                return None
            return found[0]

    def _forget_expired(self) -> None:
        now = time.time()
        for token in [t for t, (_, expires) in self._tokens.items() if expires < now]:
            del self._tokens[token]
