"""The access tokens bridge issued (bridge.http.tokens), held in this process's memory
only, keyed by a digest of the token: nothing is written anywhere."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

from bridge.credentials import Credentials

LIFETIME = 3600.0
# Tokens one user may hold at once: issuing more forgets that user's oldest.
PER_USER = 100


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenStore:
    def __init__(self, lifetime: float = LIFETIME) -> None:
        self.lifetime = lifetime
        self._tokens: dict[bytes, tuple[Credentials, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

    def issue(self, credentials: Credentials) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires = time.time() + self.lifetime
        with self._lock:
            self._forget_expired()
            held = [k for k, (c, _) in self._tokens.items() if c.username == credentials.username]
            for key in held[: max(0, len(held) - PER_USER + 1)]:  # oldest first (dict order)
                del self._tokens[key]
            self._tokens[_key(token)] = (credentials, expires)
        return token, expires

    def redeem(self, token: str) -> Credentials | None:
        key = _key(token)
        with self._lock:
            found = self._tokens.get(key)
            if found is None or found[1] < time.time():
                self._tokens.pop(key, None)
                return None
            return found[0]

    def revoke(self, token: str) -> bool:
        """Forget ``token``; whether it was a live one."""
        with self._lock:
            found = self._tokens.pop(_key(token), None)
        return found is not None and found[1] >= time.time()

    def _forget_expired(self) -> None:
        now = time.time()
        for key in [k for k, (_, expires) in self._tokens.items() if expires < now]:
            del self._tokens[key]
