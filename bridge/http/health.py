"""Probes for a process supervisor or load balancer: ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves HTTP at all (a liveness probe: restart
bridge when it stops answering). ``/readyz`` answers 200 when bridge can do its work: the
data directory takes a new file and SQLite opens a database there (and the PostgreSQL
store's database, when set, answers a query), and the upstream IMAP
server accepts a TCP connection and greets (with TLS as configured). Otherwise 503, with
what failed: a load balancer then sends clients elsewhere, and an operator reads why. From
the start of a shutdown (bridge.http.drain) it answers 503 too.

The checks' outcome is kept for ``READY_TTL`` seconds and one check runs at a time, so
probes from several balancers cost the upstream one connection per TTL at most. Both
answer without credentials and say nothing of any user.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from bridge.imap.errors import UpstreamError
from bridge.imap.session import UpstreamConfig, connect_session, shutdown_quietly

READY_TTL = 5.0


class Readiness:
    """The last outcome of the checks, and when it was found."""

    def __init__(
        self,
        data_dir: Path,
        upstream: UpstreamConfig,
        check_database: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.data_dir = data_dir
        self.upstream = upstream
        # The PostgreSQL store's: its database answers (bridge.store.stores).
        self.check_database = check_database
        self._failed: dict[str, str] = {}
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()

    async def failures(self) -> dict[str, str]:
        """What is not ready ("store", "upstream") and why; empty when all is."""
        async with self._lock:
            if time.monotonic() - self._checked_at >= READY_TTL:
                store, database, upstream = await asyncio.gather(
                    asyncio.to_thread(check_store, self.data_dir),
                    asyncio.to_thread(self.check_database),
                    asyncio.to_thread(check_upstream, self.upstream),
                )
                store = store or database
                self._failed = {
                    name: reason
                    for name, reason in (("store", store), ("upstream", upstream))
                    if reason is not None
                }
                self._checked_at = time.monotonic()
            return dict(self._failed)


def check_store(data_dir: Path) -> str | None:
    """None if a new SQLite database can be written in ``data_dir``; else why not."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".ready-", suffix=".db") as file:
            connection = sqlite3.connect(file.name)
            try:
                connection.execute("CREATE TABLE probe (value INTEGER)")
                connection.execute("INSERT INTO probe VALUES (1)")
                connection.commit()
            finally:
                connection.close()
    except OSError as exc:
        return f"the data directory is not writable: {exc.strerror or type(exc).__name__}"
    except sqlite3.Error as exc:
        return f"SQLite cannot write in the data directory: {exc}"
    return None


def check_upstream(config: UpstreamConfig) -> str | None:
    """None if the IMAP server greets (after TLS, as configured); else why not. Nobody
    logs in: the session says LOGOUT right after the greeting."""
    try:
        session = connect_session(config)
    except UpstreamError as exc:
        return getattr(exc, "reason", None) or type(exc).__name__
    with contextlib.suppress(UpstreamError):
        session.wire.run(b"LOGOUT")
    shutdown_quietly(session.client)
    return None


def _json(body: object, status: int) -> Response:
    return Response(msgspec.json.encode(body), status, media_type="application/json")


async def healthz(request: Request) -> Response:
    return _json({"status": "ok"}, 200)


async def readyz(request: Request) -> Response:
    readiness: Readiness = request.app.state.readiness
    if request.app.state.draining.is_set():
        return _json({"status": "unavailable", "failed": {"bridge": "shutting down"}}, 503)
    failed = await readiness.failures()
    if failed:
        return _json({"status": "unavailable", "failed": failed}, 503)
    return _json({"status": "ok"}, 200)
