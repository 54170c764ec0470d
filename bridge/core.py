"""The application core: what one running bridge shares across requests (settings, the
upstream pool, the users' caches, the state hub, push delivery and the JMAP engine), and
the one path a JMAP request takes through them. It knows no HTTP: bridge.http serves it."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from pathlib import Path
from typing import Any

import msgspec

from bridge import deadline
from bridge.config import Settings
from bridge.credentials import Credentials
from bridge.imap.pool import ConnectionPool
from bridge.jmap import CoreLimits, Engine, RequestError
from bridge.mail import registered_methods
from bridge.mail.account import Account, UserData, UserRegistry, account_id_for
from bridge.mail.capabilities import (
    CORE,
    WEBSOCKET,
    Features,
    account_capabilities,
    session_capabilities,
)
from bridge.mail.hub import StateHub
from bridge.mail.watcher import Watchers
from bridge.store.stores import stores_for
from bridge.webpush.service import WebPush
from bridge.workers import RequestThreads


class Bridge:
    """Everything one running bridge shares across requests."""

    def __init__(self, settings: Settings, pool: ConnectionPool | None = None) -> None:
        self.settings = settings
        self.limits = CoreLimits()
        self.pool = pool or ConnectionPool(
            settings.imap_endpoint,
            max_open_per_user=settings.pool_connections_per_user,
            idle_timeout=settings.pool_idle_timeout,
        )
        data_dir = Path(settings.data_dir)
        stores = stores_for(settings.store, data_dir, settings.store_connections)
        self.users = UserRegistry(data_dir, stores)
        self.features = Features(
            quota=settings.upstream_quota,
            submission=settings.submission_port is not None,
            vacation=settings.sieve_port is not None,
        )
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.threads = RequestThreads(settings.request_threads)
        self.watchers = Watchers(self.pool, settings)
        self.hub = StateHub(self.watchers)
        self.webpush = WebPush(self.hub, settings.push_allow_private)
        capabilities = {CORE, WEBSOCKET, *session_capabilities(self.features)}
        methods = registered_methods(self.features, push=self.webpush)
        self.engine = Engine(self.limits, capabilities, methods, settings.lenient_using)

    @staticmethod
    def states_of(user: UserData) -> dict[str, str]:
        return user.states()

    def slot(self, username: str) -> asyncio.Semaphore:
        slot = self._slots.get(username)
        if slot is None:
            slot = self._slots[username] = asyncio.Semaphore(self.limits.max_concurrent_requests)
        return slot

    def session_body(self, username: str) -> dict[str, Any]:
        """The Session resource of RFC 8620 §2 without what follows the request's URL."""
        account_id = account_id_for(username)
        account_caps = account_capabilities(self.features)
        session_caps = session_capabilities(self.features)
        return {
            "capabilities": {CORE: self.limits.to_capability(), **session_caps},
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

    def session_state(self, username: str) -> str:
        """Changes whenever anything else in the session object would."""
        encoded = msgspec.json.encode(self.session_body(username), order="sorted")
        return hashlib.sha256(encoded).hexdigest()[:16]

    async def execute(self, credentials: Credentials, body: bytes) -> dict[str, Any]:
        """Parse and run one JMAP Request of an authenticated user: the one path behind
        /jmap/api and the WebSocket. A request rejected whole raises RequestError."""
        with deadline.within(self.settings.request_timeout):
            return await self._execute(credentials, body)

    async def _execute(self, credentials: Credentials, body: bytes) -> dict[str, Any]:
        jmap_request = self.engine.parse_request(body)
        slot = self.slot(credentials.username)
        if slot.locked():
            raise RequestError(
                "limit", 400, "too many concurrent requests", "maxConcurrentRequests"
            )
        async with slot:
            await self.webpush.before_request(credentials, self.users)
            result, states = await self.threads.run(self._run, credentials, jmap_request)
        self.hub.publish(credentials.username, states)
        await self.webpush.after_request(credentials, self.users)
        return result

    def _run(
        self, credentials: Credentials, jmap_request: object
    ) -> tuple[dict[str, object], dict[str, str]]:
        """The response, and the user's states after it (for push)."""
        user = self.users.get(credentials.username)
        request_id = secrets.token_hex(6)
        state = self.session_state(credentials.username)
        with Account(user, self.pool, credentials.password, self.settings) as account:
            result = self.engine.run(jmap_request, account, user.account_id, state, request_id)
        return result, user.states()

    def close(self) -> None:
        self.pool.stop_reaper()
        self.watchers.stop_all()
        self.pool.close_all()
        self.users.close()
