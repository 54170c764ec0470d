"""HTTP Basic authentication, checked by logging in upstream.

The pool remembers a verified password only as an HMAC in memory, so a request is served
from pooled connections only when its password is the one that opened them.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import Response

from bridge.http.problems import problem
from bridge.http.throttle import FailureThrottle
from bridge.imap.errors import AuthFailed, UpstreamError
from bridge.imap.login_case import LoginCase
from bridge.imap.pool import ConnectionPool

log = logging.getLogger("bridge.http")

REALM = 'Basic realm="JMAP", charset="UTF-8"'


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


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


def _unauthorized(detail: str) -> Response:
    return problem(401, detail, headers={"WWW-Authenticate": REALM})


class Authenticator:
    """Basic credentials checked upstream, with guessing throttled per (login, address) and
    per address. A password the upstream accepted lately skips the throttle (see
    bridge.http.throttle), and logins are keyed as the upstream folds them (see
    bridge.imap.login_case)."""

    def __init__(
        self,
        pool: ConnectionPool,
        login_case: LoginCase | None = None,
        per_user: int = 5,
        per_address: int = 20,
        window: float = 300,
    ) -> None:
        self.pool = pool
        self.login_case = login_case or LoginCase()
        self.by_user_address = FailureThrottle(per_user, window)
        self.by_address = FailureThrottle(per_address, window)

    async def authenticate(self, request: HTTPConnection) -> Credentials | Response:
        given = parse_basic(request.headers.get("authorization"))
        if given is None:
            return _unauthorized("credentials required")
        credentials = Credentials(self.login_case.normalize(given.username), given.password)
        if self.pool.trusts(credentials.username, credentials.password):
            return credentials
        address = request.client.host if request.client else "unknown"
        user_address = f"{credentials.username}\0{address}"
        wait = max(
            self.by_user_address.retry_after(user_address), self.by_address.retry_after(address)
        )
        if wait > 0:
            return problem(
                429, "too many failed logins", headers={"Retry-After": str(int(wait) + 1)}
            )
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
