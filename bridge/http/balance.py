"""Even load over the workers of ``bridge serve --workers N``.

The kernel gives a new connection to whichever worker accepts it first, and an HTTP client
keeps its connection for as long as it has requests to send: sixteen clients that connect
at once can end ten on one worker and six on the other, and stay so. The ten then queue
in one process while the other has time to spare (measured in B5, two workers, N=16: p50
23 ms on the busier worker, 15 ms on the other).

So each worker publishes its load, how many connections sent it an API request in the last
second, in a slot of memory the supervisor shared before forking; a worker with ``MARGIN``
or more above the least loaded answers one request in a while with "Connection: close"
(RFC 9112 §9.6). The client opens a new connection for its next request, and the kernel
hands that to a worker waiting in accept, which the less busy one is more often. That costs
the client a TCP handshake (and TLS's, where bridge terminates it), at most once per
``SHED_GAP`` per worker, and only while the loads are apart. Only POST /jmap/api counts
and is closed: an event stream's request lasts for hours without costing anything, and an
upload or download is left to finish on its connection.
"""

from __future__ import annotations

import mmap
import struct
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge import metrics

# Seconds between two publications of a worker's load.
WINDOW = 0.1
# A connection counts while its last API request is younger than this many seconds.
ACTIVE = 1.0
# A slot not written for this long is an idle worker's: load 0.
STALE = 4 * WINDOW
# Connections a worker may carry above the least loaded: one that moves takes one from the
# one and gives it to the other, so apart by one they would only swap.
MARGIN = 2
# Seconds between two connections one worker closes.
SHED_GAP = 0.25

_SLOT = struct.Struct("dd")  # load, time.monotonic() of the writing


class WorkerLoads:
    """One slot per worker in memory shared across fork: made by the supervisor before it
    starts the workers, each of which then writes its own slot and reads the others."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._memory = mmap.mmap(-1, _SLOT.size * count)  # anonymous and MAP_SHARED

    def publish(self, index: int, load: float, now: float) -> None:
        _SLOT.pack_into(self._memory, index * _SLOT.size, load, now)

    def least_other(self, index: int, now: float) -> float:
        """The lowest load of the other workers; 0 for one that has not written lately."""
        lowest = float("inf")
        for other in range(self.count):
            if other != index:
                load, written = _SLOT.unpack_from(self._memory, other * _SLOT.size)
                lowest = min(lowest, load if now - written < STALE else 0.0)
        return lowest


class LoadBalance:
    """ASGI middleware of one worker: counts the connections its API requests come on,
    publishes their number every ``WINDOW``, and closes a connection after its answer
    while this worker carries ``MARGIN`` or more above the least loaded."""

    def __init__(self, app: ASGIApp, loads: WorkerLoads, index: int, path: str) -> None:
        self.app = app
        self.loads = loads
        self.index = index
        self.path = path
        self._last_request: dict[object, float] = {}  # client address -> monotonic time
        self._published = 0.0
        self._last_shed = 0.0

    @property
    def load(self) -> int:
        return len(self._last_request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        connection = tuple(scope.get("client") or ())
        self._seen(connection)

        async def send_balanced(message: Message) -> None:
            if message["type"] == "http.response.start" and self._shed_now(connection):
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"connection", b"close")]}  # fmt: skip
                metrics.CONNECTIONS_REBALANCED.inc()
            await send(message)

        await self.app(scope, receive, send_balanced)

    def _seen(self, connection: object) -> None:
        now = time.monotonic()
        self._last_request[connection] = now
        if now - self._published >= WINDOW:
            gone = [key for key, last in self._last_request.items() if now - last > ACTIVE]
            for key in gone:
                del self._last_request[key]
            self.loads.publish(self.index, self.load, now)
            self._published = now

    def _shed_now(self, connection: object) -> bool:
        now = time.monotonic()
        if now - self._last_shed < SHED_GAP:
            return False
        if self.load - self.loads.least_other(self.index, now) < MARGIN:
            return False
        self._last_shed = now
        self._last_request.pop(connection, None)  # it leaves
        return True
