"""Delivering pushes to PushSubscriptions (RFC 8620 §7.2).

A new subscription gets its PushVerification at once; nothing else goes to its URL until
the client has set the verification code. For each user with a verified subscription
this object listens on the StateHub, where every request through bridge publishes the
user's states, and keeps the user's upstream watcher joined, so that other IMAP clients'
changes reach the hub too. The watcher logs in with the password of the user's latest
request, held here in memory only: after a restart, a user's subscriptions deliver again
from their first request on.

Each verified subscription has a worker that POSTs a StateChange of the types it asked
for whenever their states move. News that comes while a POST is being retried joins it;
a 429 spaces the subscription's pushes further apart (RFC 8620 §7.2 requires slowing
down), a 404 or 410 destroys the subscription, and it stops at its expiry.

Several processes serving the same user (bridge.coordination) each hear every change and
each deliver to the subscriptions they know: before a POST, a process claims each
(subscription, type, state) it would announce, and announces only what it claimed first,
of a subscription that still exists. Each state reaches the client's push service once.

Everything here runs on the event loop except ``admit``, ``verify`` and ``changed``, which
the PushSubscription/set handler calls from its worker thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bridge.coordination import Coordinator, LocalCoordinator
from bridge.states import States, moved
from bridge.store.health import CacheDamaged, StorageFull
from bridge.store.push_subscriptions import PushSubscriptionRecord, PushSubscriptionStore
from bridge.webpush.outcome import Outcome

if TYPE_CHECKING:
    from bridge.credentials import Credentials
    from bridge.store.base import Store
    from bridge.webpush.sender import PushSender

log = logging.getLogger("bridge.webpush")

# RFC 8620 §8.6: the rate of creation must be limited, since each creation makes bridge
# send a request to a URL of the client's choosing.
CREATIONS_PER_WINDOW = 10
CREATION_WINDOW = 600.0
MAX_ATTEMPTS = 5
RETRY_BASE = 1.0  # seconds before the first retry; doubles with each further one
MAX_SPACING = 300.0  # the widest gap between two pushes that 429s can impose


class PushUser(Protocol):
    """What delivery needs of a user (bridge.mail.account.UserData, a layer above)."""

    @property
    def username(self) -> str: ...

    @property
    def account_id(self) -> str: ...

    @property
    def cache(self) -> Store: ...

    def states(self) -> States: ...


class PushUsers(Protocol):
    """The users by name (bridge.mail.account.UserRegistry)."""

    def get(self, username: str) -> PushUser: ...


class Hub(Protocol):
    """Where the users' states are published (bridge.mail.hub.StateHub). Its watchers need
    the whole UserData, so ``user`` is Any here: delivery only hands back the users it got
    from PushUsers."""

    def listen(self, user: Any, password: str) -> asyncio.Queue[States]: ...

    def rejoin(self, user: Any, password: str) -> None: ...

    def stop(self, username: str, queue: asyncio.Queue[States]) -> None: ...


@dataclass(eq=False)
class _Channel:
    """One verified subscription: the states it has seen and the news it has not sent."""

    record: PushSubscriptionRecord
    seen: States
    pending: States = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    spacing: float = 0.0
    task: asyncio.Task[None] | None = None

    def note(self, states: States) -> None:
        changed = moved(states, self.seen, self.record.types)
        self.seen.update(states)
        if changed:
            self.pending.update(changed)
            self.wake.set()


@dataclass(eq=False)
class _Listener:
    """A user with verified subscriptions: the hub queue, the watcher's password."""

    user: PushUser
    password: str
    queue: asyncio.Queue[States]
    channels: dict[str, _Channel] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


Loaded = tuple[PushUser, list[PushSubscriptionRecord], States]


def _load(users: PushUsers, username: str) -> Loaded:
    user = users.get(username)
    verified = [r for r in PushSubscriptionStore.of(user.cache).live() if r.verified]
    return user, verified, user.states()


def _retrieved(future: asyncio.Future[Loaded]) -> None:
    """Marks a load's failure as seen: the task that waits for it reports it, unless
    another had read the subscriptions first, and then the next request meets it."""
    if not future.cancelled():
        future.exception()


def _remove(user: PushUser, subscription_id: str) -> None:
    PushSubscriptionStore.of(user.cache).remove(subscription_id)


def _exists(user: PushUser, subscription_id: str) -> bool:
    return any(r.id == subscription_id for r in PushSubscriptionStore.of(user.cache).live())


def _claimed(
    coordinator: Coordinator, user: PushUser, subscription_id: str, changed: States
) -> States:
    """What of ``changed`` this process announces: the states no other process claimed,
    of a subscription another process may have destroyed meanwhile."""
    if not _exists(user, subscription_id):
        return {}
    return {
        name: state for name, state in changed.items()
        if coordinator.claim(f"push/{subscription_id}/{name}/{state}")
    }  # fmt: skip


class WebPush:
    def __init__(
        self,
        hub: Hub,
        allow_private: bool,
        sender: PushSender | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.hub = hub
        self.coordinator = coordinator or LocalCoordinator()
        self.allow_private = allow_private
        self._sender = sender
        self.retry_base = RETRY_BASE
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reloading: asyncio.Lock | None = None
        self._listeners: dict[str, _Listener] = {}
        self._known: set[str] = set()  # users whose subscriptions this process has read
        self._tasks: set[asyncio.Task[Any]] = set()
        # Shared with the handlers' threads:
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._creations: dict[str, deque[float]] = {}

    @property
    def sender(self) -> PushSender:
        if self._sender is None:
            # httpx, cryptography and http-ece load with the first push, not at start: a
            # bridge nobody subscribes to stays some 15 MiB smaller.
            from bridge.webpush.sender import PushSender

            self._sender = PushSender(self.allow_private)
        return self._sender

    # -- from the PushSubscription/set handler's thread --------------------------------

    def admit(self, username: str) -> bool:
        """Whether the user may create a subscription now (one more verification POST)."""
        now = time.monotonic()
        with self._lock:
            recent = self._creations.setdefault(username, deque())
            while recent and recent[0] <= now - CREATION_WINDOW:
                recent.popleft()
            if len(recent) >= CREATIONS_PER_WINDOW:
                return False
            recent.append(now)
            return True

    def verify(self, user: PushUser, record: PushSubscriptionRecord) -> None:
        """Send the PushVerification of a new subscription."""
        loop = self._loop
        if loop is None:
            log.error("no event loop for the verification of subscription %s", record.id)
            return
        loop.call_soon_threadsafe(self._spawn_verification, user, record)

    def changed(self, username: str) -> None:
        """The user's subscriptions changed: re-read them after this request."""
        with self._lock:
            self._dirty.add(username)

    # -- on the event loop --------------------------------------------------------------

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._reloading = asyncio.Lock()

    async def stop(self) -> None:
        for listener in list(self._listeners.values()):
            self._stop_listener(listener)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._sender is not None:
            await self._sender.aclose()

    def preload(self, credentials: Credentials, users: PushUsers) -> None:
        """Begin what the user's first request would do first (open their cache, a new
        user's made, and read their subscriptions) without waiting for it: called when a
        client fetches the session, whose next request is its first call."""
        self.start()
        if credentials.username in self._known:
            return
        loop = asyncio.get_running_loop()
        # On a thread from now: a task would start only once the session's answer is on
        # its way, and by then the client's next request, which waits for this, may be in.
        run = functools.partial(contextvars.copy_context().run, _load, users, credentials.username)
        loading = loop.run_in_executor(None, run)
        loading.add_done_callback(_retrieved)  # also when another task read them first
        task = loop.create_task(self._reload(credentials, users, first=True, loading=loading))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def before_request(self, credentials: Credentials, users: PushUsers) -> None:
        """Before each JMAP request. The first of a user in this process reads the user's
        subscriptions, so what the request itself changes is already pushed."""
        self.start()
        listener = self._listeners.get(credentials.username)
        if credentials.username not in self._known:
            await self._reload(credentials, users, first=True)
        elif listener is not None and listener.password != credentials.password:
            self._rejoin(listener, credentials.password)

    async def after_request(self, credentials: Credentials, users: PushUsers) -> None:
        """After each JMAP request: if it changed the user's subscriptions, read them
        again, before the client hears the outcome."""
        with self._lock:
            dirty = credentials.username in self._dirty
            self._dirty.discard(credentials.username)
        if dirty:
            await self._reload(credentials, users)

    async def _reload(
        self,
        credentials: Credentials,
        users: PushUsers,
        *,
        first: bool = False,
        loading: asyncio.Future[Loaded] | None = None,
    ) -> None:
        """Read the user's subscriptions, or take them from ``loading`` (begun already);
        ``first``: unless another task (a preload) has read them while this one waited."""
        name = credentials.username
        assert self._reloading is not None
        async with self._reloading:
            if first and name in self._known:
                return
            try:
                user, records, states = await (
                    loading if loading is not None else asyncio.to_thread(_load, users, name)
                )
            except (StorageFull, CacheDamaged) as exc:
                # Known trouble of the cache: the request meets it too and logs it once.
                log.debug("cannot read the push subscriptions of %s: %s", name, exc)
                self.changed(name)
                return
            except Exception:
                # The request itself goes through: it must not fail for its push side.
                log.exception("cannot read the push subscriptions of %s", name)
                self.changed(name)  # try again after the next request
                return
            self._known.add(name)
            self._apply(user, credentials.password, records, states)

    def _apply(
        self, user: PushUser, password: str, records: list[PushSubscriptionRecord], states: States
    ) -> None:
        name = user.username
        listener = self._listeners.get(name)
        if not records:
            if listener is not None:
                self._stop_listener(listener)
            return
        if listener is None:
            listener = _Listener(user, password, self.hub.listen(user, password))
            self._listeners[name] = listener
            listener.task = self._spawn(self._listen(listener))
        elif listener.password != password:
            self._rejoin(listener, password)
        active = {record.id: record for record in records}
        for subscription_id in list(listener.channels):
            if subscription_id not in active:
                self._drop_channel(listener, subscription_id)
        for subscription_id, record in active.items():
            channel = listener.channels.get(subscription_id)
            if channel is None:
                channel = listener.channels[subscription_id] = _Channel(record, dict(states))
                channel.task = self._spawn(self._deliver(listener, channel))
            else:
                channel.record = record  # new types or expiry
                channel.wake.set()

    def _rejoin(self, listener: _Listener, password: str) -> None:
        self.hub.rejoin(listener.user, password)
        listener.password = password

    def _stop_listener(self, listener: _Listener) -> None:
        name = listener.user.username
        for subscription_id in list(listener.channels):
            self._drop_channel(listener, subscription_id)
        if listener.task is not None:
            listener.task.cancel()
        self.hub.stop(name, listener.queue)
        self._listeners.pop(name, None)

    def _drop_channel(self, listener: _Listener, subscription_id: str) -> None:
        channel = listener.channels.pop(subscription_id, None)
        task = channel.task if channel is not None else None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _listen(self, listener: _Listener) -> None:
        while True:
            states = await listener.queue.get()
            for channel in list(listener.channels.values()):
                channel.note(states)

    async def _deliver(self, listener: _Listener, channel: _Channel) -> None:
        while True:
            remaining = channel.record.expires - time.time()
            if remaining <= 0:
                await self._forget(listener, channel, "expired")
                return
            try:
                await asyncio.wait_for(channel.wake.wait(), timeout=remaining)
            except TimeoutError:
                continue
            channel.wake.clear()
            if not channel.pending:
                continue
            if not await self._push_state(listener, channel):
                await self._forget(listener, channel, "gone at its push service")
                return
            if channel.spacing:
                await asyncio.sleep(channel.spacing)

    async def _push_state(self, listener: _Listener, channel: _Channel) -> bool:
        """POST the pending news, retrying; False if the subscription is gone for good."""
        changed = await self._ours(listener, channel)
        if not changed:
            return True  # another process announces it
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if channel.record.expires <= time.time():
                return True
            message = {
                "@type": "StateChange",
                "changed": {listener.user.account_id: changed},
            }
            result = await self.sender.post(channel.record, message)
            if result.outcome is Outcome.DELIVERED:
                channel.spacing = channel.spacing / 2 if channel.spacing >= 2 else 0.0
                return True
            if result.outcome is Outcome.GONE:
                return False
            if result.outcome is Outcome.FAILED or attempt == MAX_ATTEMPTS:
                break
            if result.slow_down:
                channel.spacing = min(max(channel.spacing * 2, 1.0), MAX_SPACING)
            await asyncio.sleep(self._backoff(attempt, result.retry_after))
            changed.update(await self._ours(listener, channel))  # what came meanwhile
        log.info("subscription %s: a StateChange was dropped (%s)", channel.record.id,
                 result.status or "no response")  # fmt: skip
        return True

    async def _ours(self, listener: _Listener, channel: _Channel) -> States:
        """The channel's pending news, taken: what this process is to announce of it."""
        changed, channel.pending = channel.pending, {}
        if not self.coordinator.shared:
            return changed
        return await asyncio.to_thread(
            _claimed, self.coordinator, listener.user, channel.record.id, changed
        )

    async def _forget(self, listener: _Listener, channel: _Channel, why: str) -> None:
        log.info("subscription %s of %s destroyed: %s", channel.record.id,
                 listener.user.username, why)  # fmt: skip
        await asyncio.to_thread(_remove, listener.user, channel.record.id)
        self._drop_channel(listener, channel.record.id)
        if not listener.channels and self._listeners.get(listener.user.username) is listener:
            self._stop_listener(listener)

    def _spawn_verification(self, user: PushUser, record: PushSubscriptionRecord) -> None:
        self._spawn(self._verify(user, record))

    async def _verify(self, user: PushUser, record: PushSubscriptionRecord) -> None:
        message = {
            "@type": "PushVerification",
            "pushSubscriptionId": record.id,
            "verificationCode": record.expected_code,
        }
        for attempt in range(1, MAX_ATTEMPTS + 1):
            # A retry must not reach a URL whose subscription was destroyed meanwhile.
            if attempt > 1 and not await asyncio.to_thread(_exists, user, record.id):
                return
            result = await self.sender.post(record, message)
            if result.outcome is Outcome.GONE:
                log.info("subscription %s destroyed: its URL is gone", record.id)
                await asyncio.to_thread(_remove, user, record.id)
                return
            if result.outcome is not Outcome.RETRY or attempt == MAX_ATTEMPTS:
                return
            await asyncio.sleep(self._backoff(attempt, result.retry_after))

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        return max(self.retry_base * 2 ** (attempt - 1), retry_after or 0.0)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("push delivery failed", exc_info=task.exception())
