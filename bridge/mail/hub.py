"""The state hub: per user, the push channels listening (EventSource, WebSocket,
PushSubscription), and the states last published to them.

Every request through bridge publishes the user's states after it, and the user's upstream
watcher (joined while any channel of the user listens) publishes what other IMAP clients
change. What moved is passed on to the other processes serving the same users through the
coordinator (bridge.coordination), and what they publish arrives here (``receive``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from bridge.coordination import Coordinator, LocalCoordinator
from bridge.states import States

if TYPE_CHECKING:
    from bridge.mail.account import UserData
    from bridge.mail.watcher import Watchers


class StateHub:
    """Per user: the streams listening, and the states last published to them."""

    def __init__(
        self, watchers: Watchers | None = None, coordinator: Coordinator | None = None
    ) -> None:
        self._queues: dict[str, set[asyncio.Queue[States]]] = {}
        self._latest: dict[str, States] = {}
        self._watchers = watchers
        self._coordinator = coordinator or LocalCoordinator()

    def share(self) -> None:
        """Hear what other processes publish (on the running event loop)."""
        loop = asyncio.get_running_loop()

        def deliver(username: str, states: States) -> None:
            loop.call_soon_threadsafe(self.receive, username, states)

        self._coordinator.subscribe(deliver)

    def listen(self, user: UserData, password: str) -> asyncio.Queue[States]:
        """What a push channel (EventSource, WebSocket, PushSubscription) holds: a queue of
        the user's states, with the user's upstream watcher joined so that other IMAP
        clients' changes come too. Subscribed before the caller reads the states, so no
        change falls between the two. ``stop`` ends it."""
        assert self._watchers is not None
        queue = self.subscribe(user.username)
        self._watchers.join(user, password, self.reporter(user.username))
        return queue

    def stop(self, username: str, queue: asyncio.Queue[States]) -> None:
        assert self._watchers is not None
        self.unsubscribe(username, queue)
        self._watchers.leave(username)

    def rejoin(self, user: UserData, password: str) -> None:
        """The watcher of a listener whose password changed logs in with the new one."""
        assert self._watchers is not None
        self._watchers.leave(user.username)
        self._watchers.join(user, password, self.reporter(user.username))

    def subscribe(self, username: str) -> asyncio.Queue[States]:
        queue: asyncio.Queue[States] = asyncio.Queue(maxsize=64)
        self._queues.setdefault(username, set()).add(queue)
        return queue

    def unsubscribe(self, username: str, queue: asyncio.Queue[States]) -> None:
        queues = self._queues.get(username, set())
        queues.discard(queue)
        if not queues:
            self._queues.pop(username, None)

    def publish(self, username: str, states: States) -> None:
        moved = self.receive(username, states)
        if moved and self._coordinator.shared:
            self._coordinator.publish(username, moved)

    def receive(self, username: str, states: States) -> States:
        """Pass on to this process's listeners what is new in ``states``; that part."""
        # A watcher's report read before a request committed may arrive after that
        # request's own: each type keeps its newest state, so no stream goes backwards.
        latest = self._latest.setdefault(username, {})
        moved = {name: state for name, state in states.items() if _newer(state, latest.get(name))}
        if not moved:
            return moved  # nothing new: listeners sleep on
        latest.update(moved)
        current = dict(latest)
        for queue in self._queues.get(username, ()):
            with contextlib.suppress(asyncio.QueueFull):  # a stalled stream only misses news
                queue.put_nowait(current)
        return moved

    def reporter(self, username: str) -> Callable[[States], None]:
        """A watcher's report callback: it runs in the watcher's thread, and publishes on
        the running event loop."""
        loop = asyncio.get_running_loop()

        def report(states: States) -> None:
            loop.call_soon_threadsafe(self.publish, username, states)

        return report


def _newer(state: str, than: str | None) -> bool:
    """Whether ``state`` is later than ``than``: cache states ("epoch-counter") of one epoch
    compare by counter; any other different state (a new epoch, a digest) is news."""
    if than is None:
        return True
    epoch, _, counter = state.rpartition("-")
    old_epoch, _, old_counter = than.rpartition("-")
    if epoch == old_epoch and counter.isdigit() and old_counter.isdigit():
        return int(counter) > int(old_counter)
    return state != than
