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
import signal
import socket
import threading
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

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
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
