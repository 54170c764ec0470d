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

from bridge import deadline, inline, metrics
from bridge.config import Settings
from bridge.coordination import open_coordinator
from bridge.credentials import Credentials
from bridge.imap.pool import ConnectionPool
from bridge.jmap import CoreLimits, Engine, Request, RequestError
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
        # What the processes serving the same users share (README "Several instances").
        self.coordinator = open_coordinator(
            settings.coordination_kind, data_dir, settings.lease_time
        )
        stores = stores_for(settings.store, data_dir, settings.store_connections)
        self.users = UserRegistry(data_dir, stores, self.coordinator)
        self.features = Features(
            quota=settings.upstream_quota,
            submission=settings.submission_port is not None,
            vacation=settings.sieve_port is not None,
        )
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._session_states: dict[str, str] = {}
        self.threads = RequestThreads(settings.request_threads)
        self.watchers = Watchers(self.pool, settings)
        self.hub = StateHub(self.watchers, self.coordinator)
        self.webpush = WebPush(self.hub, settings.push_allow_private, coordinator=self.coordinator)
        capabilities = {CORE, WEBSOCKET, *session_capabilities(self.features)}
        methods = registered_methods(self.features, push=self.webpush)
        self.engine = Engine(self.limits, capabilities, methods, settings.lenient_using)

    async def user(self, username: str) -> UserData:
        """The user's data, for the event loop: at once if their cache is open and sound,
        else got on a request thread (opening a cache checks and may migrate it, and
        waits for the registry's lock meanwhile)."""
        user = self.users.find(username)
        if user is not None and not user.cache.damaged:
            return user
        return await self.threads.run(self.users.get, username)

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
        """Changes whenever anything else in the session object would: never while the
        process runs, so it is worked out once per user."""
        state = self._session_states.get(username)
        if state is None:
            encoded = msgspec.json.encode(self.session_body(username), order="sorted")
            state = self._session_states[username] = hashlib.sha256(encoded).hexdigest()[:16]
        return state

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
            result, states = await self._run_somewhere(credentials, jmap_request)
        self.hub.publish(credentials.username, states)
        await self.webpush.after_request(credentials, self.users)
        return result

    async def _run_somewhere(
        self, credentials: Credentials, jmap_request: Request
    ) -> tuple[dict[str, object], dict[str, str]]:
        """On the event loop if the request only reads a cache the user's watcher vouches
        for, and gets done without waiting and within the budget (bridge.inline); else,
        or if it turns out otherwise, from the start on a worker thread."""
        if self._may_run_inline(credentials.username, jmap_request):
            try:
                with inline.on_loop(self.settings.inline_budget):
                    outcome = self._run(credentials, jmap_request)
            except inline.NeedsWorker:
                metrics.JMAP_REQUESTS.labels("moved").inc()
            else:
                metrics.JMAP_REQUESTS.labels("loop").inc()
                return outcome
        else:
            metrics.JMAP_REQUESTS.labels("worker").inc()
        return await self.threads.run(self._run, credentials, jmap_request)

    def _may_run_inline(self, username: str, jmap_request: Request) -> bool:
        if self.settings.inline_budget <= 0 or not self.engine.may_run_inline(jmap_request):
            return False
        if self.settings.store is not None:
            return False  # every read of a PostgreSQL store is a round trip: never on the loop
        user = self.users.find(username)
        return user is not None and user.freshness.level_at_once()

    def _run(
        self, credentials: Credentials, jmap_request: object
    ) -> tuple[dict[str, object], dict[str, str]]:
        """The response, and the user's states after it for push: none when the request
        changed nothing (what others change, they publish themselves)."""
        user = self.users.get(credentials.username)
        request_id = secrets.token_hex(6)
        state = self.session_state(credentials.username)
        mark = user.change_mark()
        with (
            Account(user, self.pool, credentials.password, self.settings) as account,
            user.cache.one_request(),
        ):
            result = self.engine.run(jmap_request, account, user.account_id, state, request_id)
        return result, (user.states() if user.change_mark() != mark else {})

    def close(self) -> None:
        self.pool.stop_reaper()
        self.watchers.stop_all()
        self.pool.close_all()
        self.users.close()
        self.coordinator.close()
