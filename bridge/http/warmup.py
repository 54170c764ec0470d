"""What the first request of a process would otherwise pay for, done at start.

A fresh process imports anyio's thread machinery at its first ``run_in_threadpool`` (under
``Authenticator.authenticate`` and the API call), asyncio's default executor at its first
``asyncio.to_thread``, the IDNA codec at its first upstream connect (``getaddrinfo`` of a
``str`` host), the raw-unicode-escape codec at its first encoded-word
(``email.header.decode_header``), builds the empty-cache image at its first new user, a
TLS context at its first TLS connection, the PostgreSQL store's first connections
at its first user, and msgspec's view of each argument Struct at
the first call of its method (the annotations of every field evaluated: 1-2 ms for the
three Structs of a list view): a third of a cold first page's time went to imports alone.
Each is done here once, before the server takes requests. Only what the JMAP request path
needs: httpx, PyJWT and cryptography stay lazy (pass-through OAuth and Web Push load them
where they are set up), which keeps an idle process small.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import Callable, Iterator

import msgspec
from starlette.concurrency import run_in_threadpool

from bridge.config import Settings
from bridge.store.schema import empty_database, table_names


async def warm_up(settings: Settings, reach_store: Callable[[], object] = lambda: None) -> None:
    await run_in_threadpool(_warm_blocking, settings)
    await asyncio.to_thread(_nothing)
    # The PostgreSQL store's pool and functions (bridge.store.postgres): a database out
    # of reach is only noted (/readyz says so), not a reason to refuse to start.
    await asyncio.to_thread(reach_store)


def _warm_blocking(settings: Settings) -> None:
    codecs.lookup("idna")
    codecs.lookup("raw-unicode-escape")
    for struct in _bridge_structs(msgspec.Struct):
        # Caches the Struct's field types, which msgspec.convert reuses. A Struct that
        # msgspec cannot take fails where it is used, as it would have.
        with contextlib.suppress(TypeError, NameError):
            msgspec.json.Decoder(struct)
    empty_database()
    table_names()
    if settings.imap_endpoint.tls != "plain":
        settings.imap_endpoint.ssl_context()


def _nothing() -> None:
    """Starts asyncio's default executor (web push reads a user's subscriptions there)."""


def _bridge_structs(base: type[msgspec.Struct]) -> Iterator[type[msgspec.Struct]]:
    """The Structs bridge defines (every module of the request path is imported by now)."""
    for struct in base.__subclasses__():
        if struct.__module__.startswith("bridge."):
            yield struct
        yield from _bridge_structs(struct)
