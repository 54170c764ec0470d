"""The access tokens bridge issued (bridge.http.tokens), keyed by a digest of the token.

Alone, bridge holds them in this process's memory only: nothing is written anywhere.
Several instances (README "Several instances") share them through the coordinator, so a
token issued by one works at every other: the store then keeps, under the token's SHA-256,
the login and password it stands for encrypted with AES-256-GCM under a key derived from
the token itself (HKDF-SHA256). The token is never stored, so neither is anything that
opens the password: whoever reads the store without a token learns nothing."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from typing import Any

import msgspec

from bridge.coordination.base import SharedRecords
from bridge.credentials import Credentials

LIFETIME = 3600.0
# Tokens one user may hold at once: issuing more forgets that user's oldest.
PER_USER = 100


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _cipher(token: str) -> Any:
    """AES-256-GCM keyed by the token (never by its digest, which the store holds)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    derive = HKDF(hashes.SHA256(), 32, salt=None, info=b"bridge token credentials")
    return AESGCM(derive.derive(token.encode("utf-8", "surrogatepass")))


def _seal(token: str, credentials: Credentials) -> bytes:
    nonce = secrets.token_bytes(12)
    plain = msgspec.json.encode([credentials.username, credentials.password])
    return nonce + bytes(_cipher(token).encrypt(nonce, plain, None))


def _unseal(token: str, sealed: bytes) -> Credentials | None:
    from cryptography.exceptions import InvalidTag

    try:
        plain = _cipher(token).decrypt(sealed[:12], sealed[12:], None)
    except InvalidTag:
        return None
    username, password = msgspec.json.decode(plain, type=tuple[str, str])
    return Credentials(username, password)


class TokenStore:
    def __init__(self, lifetime: float = LIFETIME, shared: SharedRecords | None = None) -> None:
        self.lifetime = lifetime
        self._tokens: dict[bytes, tuple[Credentials, float]] = {}
        self._lock = threading.Lock()
        # Other instances share the tokens: every call goes to the coordinator.
        self._shared = shared

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

    def issue(self, credentials: Credentials) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires = time.time() + self.lifetime
        if self._shared is not None:
            owner = hashlib.sha256(credentials.username.encode("utf-8", "surrogatepass")).digest()
            sealed = _seal(token, credentials)
            self._shared.keep_token(_key(token), owner, sealed, expires, PER_USER)
            return token, expires
        with self._lock:
            self._forget_expired()
            held = [k for k, (c, _) in self._tokens.items() if c.username == credentials.username]
            for key in held[: max(0, len(held) - PER_USER + 1)]:  # oldest first (dict order)
                del self._tokens[key]
            self._tokens[_key(token)] = (credentials, expires)
        return token, expires

    def redeem(self, token: str) -> Credentials | None:
        key = _key(token)
        if self._shared is not None:
            found = self._shared.token(key)
            return _unseal(token, found[0]) if found is not None else None
        with self._lock:
            found = self._tokens.get(key)
            if found is None or found[1] < time.time():
                self._tokens.pop(key, None)
                return None
            return found[0]

    def revoke(self, token: str) -> bool:
        """Forget ``token``; whether it was a live one."""
        if self._shared is not None:
            return self._shared.drop_token(_key(token))
        with self._lock:
            found = self._tokens.pop(_key(token), None)
        return found is not None and found[1] >= time.time()

    def _forget_expired(self) -> None:
        now = time.time()
        for key in [k for k, (_, expires) in self._tokens.items() if expires < now]:
            del self._tokens[key]
