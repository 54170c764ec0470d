"""Who a request is: HTTP Basic, or a Bearer token, checked by logging in upstream.

The pool remembers a verified password only as an HMAC in memory, so a request is served
from pooled connections only when its password is the one that opened them.

A Bearer token is either one bridge issued (bridge.http.tokens: it stands for the
credentials it was issued for) or, with pass-through OAuth set up (bridge.http.bearer),
the mail provider's own access token, which logs in upstream in place of a password. A
token that is neither, or that the upstream refuses, is answered 401 with
``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 §3.1).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import Response

from bridge.coordination.base import SharedRecords
from bridge.credentials import Credentials
from bridge.endpoint import AccessToken
from bridge.http.bearer import IdentityUnavailable, OAuthIdentity
from bridge.http.problems import problem
from bridge.http.throttle import FailureThrottle
from bridge.imap.errors import AuthFailed, UpstreamError
from bridge.imap.login_case import LoginCase
from bridge.imap.pool import ConnectionPool

if TYPE_CHECKING:
    from bridge.http.token_store import TokenStore

log = logging.getLogger("bridge.http")

REALM = 'Basic realm="JMAP", charset="UTF-8"'
INVALID_TOKEN = 'Bearer error="invalid_token"'


def parse_basic(header: str | None) -> Credentials | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username or not password:
        return None
    if any(ch in username + password for ch in "\r\n\0"):
        return None
    return Credentials(username, password)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1)."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _unauthorized(detail: str) -> Response:
    return problem(401, detail, headers={"WWW-Authenticate": REALM})


def invalid_token() -> Response:
    return problem(401, "invalid, expired or revoked token",
                   headers={"WWW-Authenticate": INVALID_TOKEN})  # fmt: skip


def _too_many(wait: float) -> Response:
    return problem(429, "too many failed logins", headers={"Retry-After": str(int(wait) + 1)})


def _unavailable(what: str) -> Response:
    return problem(503, f"{what} unavailable", headers={"Retry-After": "5"})


class Authenticator:
    """Credentials checked upstream, with guessing throttled per (login, address) and per
    address, and bad Bearer tokens per address. A secret the upstream accepted lately
    skips the throttle (see bridge.http.throttle), and logins are keyed as the upstream
    folds them (see bridge.imap.login_case)."""

    def __init__(
        self,
        pool: ConnectionPool,
        login_case: LoginCase | None = None,
        per_user: int = 5,
        per_address: int = 20,
        window: float = 300,
        *,
        tokens: TokenStore | None = None,
        oauth: OAuthIdentity | None = None,
        shared: SharedRecords | None = None,
    ) -> None:
        self.pool = pool
        self.login_case = login_case or LoginCase()
        self.tokens = tokens
        self.oauth = oauth
        self.by_user_address = FailureThrottle(per_user, window, shared, "login-address")
        self.by_address = FailureThrottle(per_address, window, shared, "address")

    async def authenticate(self, request: HTTPConnection) -> Credentials | Response:
        header = request.headers.get("authorization")
        address = request.client.host if request.client else "unknown"
        token = bearer_token(header)
        if token is not None:
            return await self._bearer(token, address)
        given = parse_basic(header)
        if given is None:
            return _unauthorized("credentials required")
        credentials = Credentials(self.login_case.normalize(given.username), given.password)
        if self.pool.trusts(credentials.username, credentials.password):
            return credentials
        user_address = f"{credentials.username}\0{address}"
        wait = max(
            self.by_user_address.retry_after(user_address), self.by_address.retry_after(address)
        )
        if wait > 0:
            return _too_many(wait)
        try:
            username = await run_in_threadpool(
                self.login_case.verify, self.pool, credentials.username, credentials.password
            )
        except AuthFailed:
            log.info("login failed for %s from %s", credentials.username, address)
            self.by_user_address.fail(user_address)
            self.by_address.fail(address)
            return _unauthorized("invalid credentials")
        except UpstreamError as exc:
            log.warning(
                "upstream unavailable while authenticating %s: %s", credentials.username, exc
            )
            return problem(503, "upstream IMAP unavailable", headers={"Retry-After": "5"})
        self.by_user_address.succeed(user_address)
        return Credentials(username, credentials.password)

    async def _bearer(self, token: str, address: str) -> Credentials | Response:
        issued = self.tokens.redeem(token) if self.tokens is not None else None
        if issued is not None:
            return await self._issued(token, issued)
        access = AccessToken(token)
        known = self.oauth.cached(token) if self.oauth is not None else None
        if known is not None and self.pool.trusts(self.login_case.normalize(known), access):
            return Credentials(self.login_case.normalize(known), access)
        wait = self.by_address.retry_after(address)
        if wait > 0:
            return _too_many(wait)
        if self.oauth is None:
            log.info("unknown bearer token from %s", address)
            self.by_address.fail(address)
            return invalid_token()
        try:
            username = await self.oauth.username(token)
        except IdentityUnavailable as exc:
            log.warning("cannot check a bearer token: %s", exc)
            return _unavailable("OAuth token check")
        if username is None:
            log.info("invalid OAuth token from %s", address)
            self.by_address.fail(address)
            return invalid_token()
        login = self.login_case.normalize(username)
        try:
            login = await run_in_threadpool(self.login_case.verify, self.pool, login, access)
        except AuthFailed:
            log.info("OAuth token for %s refused upstream (from %s)", username, address)
            self.oauth.forget(token)
            self.by_address.fail(address)
            return invalid_token()
        except UpstreamError:
            log.warning("upstream unavailable while authenticating %s", username)
            return _unavailable("upstream IMAP")
        return Credentials(login, access)

    async def _issued(self, token: str, credentials: Credentials) -> Credentials | Response:
        """A token bridge issued stands for its credentials as long as the upstream still
        takes their password: checked again once the pool's trust in it lapses."""
        if self.pool.trusts(credentials.username, credentials.password):
            return credentials
        try:
            await run_in_threadpool(self.pool.verify, credentials.username, credentials.password)
        except AuthFailed:
            log.info("password behind a token of %s no longer accepted", credentials.username)
            if self.tokens is not None:
                self.tokens.revoke(token)
            return invalid_token()
        except UpstreamError:
            log.warning("upstream unavailable while authenticating %s", credentials.username)
            return _unavailable("upstream IMAP")
        return credentials
