"""Pass-through OAuth 2.0: whose mailbox an access token opens.

A Bearer token bridge did not issue itself is taken for the mail provider's own access
token, and goes upstream as SASL OAUTHBEARER or XOAUTH2 (bridge.endpoint). Both need the
login beside the token, which a Bearer header does not carry: it is learnt from the
token, one of two ways (settings):

- ``oauth_introspection_url``: RFC 7662 token introspection, a POST of ``token=...``
  (with HTTP Basic ``oauth_client_id``/``oauth_client_secret`` when set); the token is
  valid when the answer says ``"active": true``, and the login is its ``username`` member.
  With ``oauth_introspection_mode = "userinfo"`` the URL is an OpenID Connect UserInfo
  endpoint instead (Google's, say): a GET with the token as Bearer, valid when answered
  2xx (and not ``"active": false``), the login its ``email`` member. Dovecot's oauth2
  passdb calls this ``introspection_mode = auth``.
- ``oauth_jwks_url``: the token is a JWT, signed by a key of that JWK Set and checked
  for expiry, and for ``oauth_issuer`` and ``oauth_audience`` when set; the login is its
  ``email`` claim.

``oauth_username_claim`` names another member or claim for the login. Either way the
upstream has the last word: a token it refuses is refused here too.

A token found valid is remembered with its login for ``oauth_cache_ttl`` seconds at most
(never past its own expiry), keyed by its SHA-256 so that the cache holds no token.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from bridge.config import Settings

if TYPE_CHECKING:
    import jwt

# Tokens remembered at most: the oldest are forgotten first.
CACHE_SIZE = 10_000
# Only signatures with a public key: an HMAC secret shared with bridge would let bridge
# mint tokens, and "none" would let anyone.
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                  "ES512", "EdDSA"]  # fmt: skip
TIMEOUT = 10.0


class IdentityUnavailable(Exception):
    """The introspection endpoint or the JWK Set could not be reached: no verdict."""


class TokenCache:
    """Logins of tokens found valid lately, keyed by a digest of the token."""

    def __init__(self, ttl: float, size: int = CACHE_SIZE) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, token: str) -> str | None:
        key = self.key(token)
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found[1] <= time.time():
                del self._entries[key]
                return None
            return found[0]

    def put(self, token: str, username: str, expires: float | None) -> None:
        until = time.time() + self.ttl
        if expires is not None:
            until = min(until, expires)
        with self._lock:
            self._entries[self.key(token)] = (username, until)
            self._entries.move_to_end(self.key(token))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, token: str) -> None:
        with self._lock:
            self._entries.pop(self.key(token), None)


class OAuthIdentity:
    """The login an access token stands for, or None for a token found invalid."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = TokenCache(settings.oauth_cache_ttl)
        self._jwks: jwt.PyJWKClient | None = None
        if settings.oauth_jwks_url:
            import jwt  # PyJWT and httpx load only where pass-through OAuth is set up

            self._jwks = jwt.PyJWKClient(settings.oauth_jwks_url, timeout=TIMEOUT)

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthIdentity | None:
        """None when pass-through OAuth is not set up."""
        if settings.oauth_introspection_url or settings.oauth_jwks_url:
            return cls(settings)
        return None

    def cached(self, token: str) -> str | None:
        """The login of a token found valid lately, without asking anyone."""
        return self.cache.get(token)

    async def username(self, token: str) -> str | None:
        cached = self.cache.get(token)
        if cached is not None:
            return cached
        if self._jwks is not None:
            claims = await run_in_threadpool(self._decode_jwt, token)
            username_claim = self.settings.oauth_username_claim or "email"
        elif self.settings.oauth_introspection_mode == "userinfo":
            claims = await self._userinfo(token)
            username_claim = self.settings.oauth_username_claim or "email"
        else:
            claims = await self._introspect(token)
            username_claim = self.settings.oauth_username_claim or "username"
        username = claims.get(username_claim) if claims is not None else None
        if not isinstance(username, str) or not username:
            return None
        expires = claims.get("exp") if claims is not None else None
        self.cache.put(token, username, expires if isinstance(expires, int | float) else None)
        return username

    def forget(self, token: str) -> None:
        """Drop a token the upstream refused after all (revoked since it was cached)."""
        self.cache.forget(token)

    async def _introspect(self, token: str) -> dict[str, Any] | None:
        import httpx

        settings = self.settings
        assert settings.oauth_introspection_url is not None
        auth = None
        if settings.oauth_client_id is not None:
            auth = (settings.oauth_client_id, settings.oauth_client_secret or "")
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.post(
                    settings.oauth_introspection_url,
                    data={"token": token, "token_type_hint": "access_token"},
                    headers={"Accept": "application/json"},
                    auth=auth,
                )
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IdentityUnavailable(f"token introspection failed: {type(exc).__name__}") from exc
        # RFC 7662 §2.2: anything but "active": true is an invalid token.
        if not isinstance(answer, dict) or answer.get("active") is not True:
            return None
        return answer

    async def _userinfo(self, token: str) -> dict[str, Any] | None:
        import httpx

        url = self.settings.oauth_introspection_url
        assert url is not None
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.get(
                    url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
                )
            if response.status_code in (401, 403):  # RFC 6750 §3.1: the token is no good
                return None
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IdentityUnavailable(f"userinfo request failed: {type(exc).__name__}") from exc
        if not isinstance(answer, dict) or answer.get("active") is False:
            return None
        return answer

    def _decode_jwt(self, token: str) -> dict[str, Any] | None:
        import jwt

        assert self._jwks is not None
        settings = self.settings
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise IdentityUnavailable("the JWK Set could not be fetched") from exc
        except jwt.PyJWTError:
            return None  # not a JWT, or signed by no key of the set
        try:
            return jwt.decode(
                token,
                key,
                algorithms=JWT_ALGORITHMS,
                audience=settings.oauth_audience,
                issuer=settings.oauth_issuer,
                options={"require": ["exp"], "verify_aud": settings.oauth_audience is not None},
            )
        except jwt.PyJWTError:
            return None
