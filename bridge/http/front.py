"""The application core as the HTTP front end holds it: the core plus what only HTTP
needs (the bearer tokens, the authenticator, the event-stream slots, the public URL)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from bridge.config import Settings
from bridge.core import Bridge
from bridge.http.auth import Authenticator
from bridge.http.bearer import OAuthIdentity
from bridge.http.slots import UserSlots
from bridge.http.token_store import TokenStore
from bridge.imap.login_case import LoginCase
from bridge.imap.pool import ConnectionPool


class HttpBridge(Bridge):
    """What ``request.app.state.bridge`` holds."""

    def __init__(self, settings: Settings, pool: ConnectionPool | None = None) -> None:
        super().__init__(settings, pool)
        shared = self.coordinator.records()
        self.tokens = TokenStore(settings.token_lifetime, shared=shared)
        self.auth = Authenticator(
            self.pool,
            LoginCase(settings.login_case),
            tokens=self.tokens,
            oauth=OAuthIdentity.from_settings(settings),
            shared=shared,
        )
        self.event_streams = UserSlots()

    def base_url(self, request: HTTPConnection) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")
