"""Fixtures for end-to-end tests: a real Dovecot, a real bridge on uvicorn, and accounts.

``upstream`` is parametrized: every test that uses it runs against a Dovecot advertising
everything, and again against one that hides CONDSTORE and QRESYNC, so both sync paths
run. Each test gets an account of its own (``account``), so tests never see each other's
mail although they share one Dovecot and one bridge.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.imap.refusals import REFUSED
from tests.integration.server import BridgeServer, JmapClient

SPARE_ACCOUNTS = {f"user{number:03d}": f"secret-{number:03d}" for number in range(1, 151)}
VARIANTS = {"full": (), "no-condstore": ("CONDSTORE", "QRESYNC")}


@pytest.fixture(scope="session", params=list(VARIANTS))
def upstream(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    dovecot = Dovecot(dict(SPARE_ACCOUNTS), hide_capabilities=VARIANTS[request.param])
    with dovecot:
        dovecot.spare = list(SPARE_ACCOUNTS.items())  # type: ignore[attr-defined]
        yield dovecot


@pytest.fixture(scope="session")
def bridge(upstream: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeServer]:
    with BridgeServer(upstream.host, upstream.port, tmp_path_factory.mktemp("data")) as server:
        yield server


@pytest.fixture
def account(upstream: Dovecot) -> tuple[str, str]:
    """A username and password nobody else in this run uses."""
    return upstream.spare.pop(0)  # type: ignore[attr-defined]


@pytest.fixture
def jmap(bridge: BridgeServer, account: tuple[str, str]) -> Iterator[JmapClient]:
    client = bridge.client(*account)
    yield client
    client.close()


@pytest.fixture
def other(upstream: Dovecot, account: tuple[str, str]) -> Iterator[IMAPClient]:
    """Another IMAP client of the same account, changing things behind bridge's back."""
    client = IMAPClient(upstream.host, port=upstream.port, ssl=False)
    client.login(*account)
    yield client
    with contextlib.suppress(Exception):
        client.logout()


@pytest.fixture(autouse=True)
def _forget_refused_extensions() -> Iterator[None]:
    """Refusals are remembered per host and port for the process: a later test's server
    may reuse a port, and must not inherit what an earlier one refused."""
    yield
    REFUSED.clear()
