"""Graceful shutdown on SIGTERM (or SIGINT): stop taking connections, let requests finish,
end what never finishes by itself, log out upstream, exit 0, all within a bound.

uvicorn does the first part: it closes the listening sockets, lets in-flight requests
answer (closing their connections after) for ``shutdown_timeout`` seconds and cancels what
is left, then runs the application's shutdown. Two things it cannot know are bridge's:

- An EventSource stream ends only when its client leaves. ``DrainingServer`` sets the
  ``draining`` event as soon as the listeners are closed: every stream then ends its
  response cleanly (the client's EventSource reconnects, to another instance behind a
  balancer), and ``/readyz`` answers 503. WebSockets uvicorn closes itself, with 1012
  ("service restart", RFC 6455 §7.4.1).
- Watchers, background indexing and pooled IMAP sessions run in threads: the
  application's shutdown stops them and says LOGOUT upstream (``close_within``), for at
  most ``CLOSE_GRACE`` seconds; what is still busy then is left to the process's end.

uvicorn re-raises the signal it caught once it is done, so that the default action ends
the process with "killed by SIGTERM" (status 143 in a shell); a drain that went as planned
is a normal exit (status 0), and ``exit_status_zero`` makes it one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

log = logging.getLogger("bridge.http")

# Seconds the application's shutdown may spend stopping threads and logging out upstream
# (a LOGOUT waits for at most 5 s: bridge.imap.connection.LOGOUT_TIMEOUT).
CLOSE_GRACE = 5.0


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with ``draining`` set once it stops taking connections."""

    def __init__(self, config: uvicorn.Config, draining: asyncio.Event) -> None:
        super().__init__(config)
        self.draining = draining
        self.drain_started: float | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.drain_started = time.monotonic()
        # Closed here before uvicorn does it again (closing twice is harmless): a client
        # told to reconnect must not find this instance still listening.
        for server in self.servers:
            server.close()
        log.info(
            "draining: open event streams end, requests in progress finish",
            extra={"connections": len(self.server_state.connections)},
        )
        self.draining.set()
        await super().shutdown(sockets)

    def leave_stragglers(self) -> None:
        """After ``run``: a request whose time ran out was cancelled, but its thread may
        still wait for a silent upstream (up to upstream_timeout). Such threads get what is
        left of the bound; if any is still busy then, the process ends at once, with
        status 1, rather than when the upstream answers. The cache is SQLite in WAL mode:
        a write cut short is rolled back at the next start, and the upstream keeps the mail.
        """
        if self.drain_started is None:
            return  # no shutdown ran (uvicorn failed to start)
        waited = self.config.timeout_graceful_shutdown or 0
        bound = self.drain_started + waited + CLOSE_GRACE
        for thread in _busy_threads():
            thread.join(max(0.0, bound - time.monotonic()))
        busy = _busy_threads()
        if busy:
            log.warning("shutdown: %d threads still wait for the upstream; exiting without "
                        "them", len(busy))  # fmt: skip
            logging.shutdown()
            os._exit(1)


def _busy_threads() -> list[threading.Thread]:
    current = threading.current_thread()
    return [
        thread
        for thread in threading.enumerate()
        if thread is not current and not thread.daemon and thread.is_alive()
    ]


async def close_within(close: Callable[[], None], seconds: float) -> bool:
    """Run ``close`` in a daemon thread of its own; whether it ended within ``seconds``. A
    daemon thread left running does not hold up the process's exit, where a worker of the
    event loop's executor would."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def run() -> None:
        try:
            close()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(done.set)

    threading.Thread(target=run, name="bridge-close", daemon=True).start()
    try:
        async with asyncio.timeout(seconds):
            await done.wait()
    except TimeoutError:
        log.warning("shutdown: still closing after %.0f s; exiting anyway", seconds)
        return False
    return True


@contextlib.contextmanager
def exit_status_zero() -> Iterator[None]:
    """Around ``Server.run``: SIGTERM and SIGINT caught quietly outside uvicorn's own
    handlers, so that the signal uvicorn raises again after its graceful shutdown ends
    nothing. The handlers from before come back after."""

    def ignore(signum: int, frame: FrameType | None) -> None:
        return None

    handled = (signal.SIGTERM, signal.SIGINT)
    before = {signum: signal.signal(signum, ignore) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
