"""Fixtures for end-to-end tests: a real IMAP server, a real bridge on uvicorn, and accounts.

``upstream`` is parametrized: every test that uses it runs against a Dovecot advertising
everything, and again against one that hides CONDSTORE and QRESYNC, so both sync paths
run. A test (or a module, by ``pytestmark``) marked ``every_upstream`` (from
tests/integration/upstreams.py) runs against Cyrus IMAP as well: the tests of IMAP
behaviour (sync, mailboxes, Emails, search) do, the tests of a Dovecot feature do not. The
closest marker wins, so one test of such a module can be marked ``dovecot_only``. Each
test gets an account of its own (``account``), so tests never see each other's mail
although they share one server and one bridge.
"""

from __future__ import annotations

import base64
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.cyrus import Cyrus
from bridge.demo.dovecot import Dovecot
from bridge.imap.refusals import REFUSED
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.upstreams import CYRUS, DOVECOT_VARIANTS, Upstream, require_cyrus
from tests.support import stores

SPARE_ACCOUNTS = {f"user{number:03d}": f"secret-{number:03d}" for number in range(1, 201)}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "upstreams(*names): the upstream variants a test runs against"
    )
    config.addinivalue_line(
        "markers",
        "sqlite_only: about the SQLite store (its files' damage, disk space; reads on the "
        "event loop): not run on the "
        "PostgreSQL run (BRIDGE_TEST_STORE=postgresql)",
    )
    # Every log record of the run, at DEBUG, goes to one file that is searched for the
    # test passwords when the run ends (pytest_sessionfinish): no secret in any log.
    if not config.option.log_file:
        config.option.log_file = str(Path(tempfile.mkdtemp(prefix="bridge-log-")) / "run.log")
        config.option.log_file_level = "DEBUG"
        # uvicorn's logging set-up closes every handler; a closed file handler reopens on
        # the next record, and must not truncate the file then.
        config.option.log_file_mode = "a"


def _secrets() -> dict[str, str]:
    """What must never show in a log: the shared accounts' passwords and Basic forms."""
    from tests.integration.conftest import USERS

    found: dict[str, str] = {}
    for user, password in (SPARE_ACCOUNTS | USERS).items():
        found[password] = f"password of {user}"
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        found[basic] = f"Basic credentials of {user}"
    if stores.started_cluster() is not None:
        found[stores.started_cluster().password] = "password of the PostgreSQL store"  # type: ignore[union-attr]
    return found


# The tests' own clients, which log what they send (their credentials among it): their
# records share the run's log with bridge's and are not bridge's to answer for.
CLIENT_LOGGERS = ("websockets.client", "httpcore.", "httpx")


def _logger_of(line: str) -> str:
    # The file format: "LEVEL    logger.name:file.py:line message"
    fields = line.split(maxsplit=2)
    return fields[1] if len(fields) > 1 else ""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _check_log(session)
    stores.stop()


def _check_log(session: pytest.Session) -> None:
    log_file = session.config.option.log_file
    if not log_file or not Path(log_file).exists():
        return
    secrets = _secrets()
    leaks: list[str] = []
    with open(log_file, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if _logger_of(line).startswith(CLIENT_LOGGERS):
                continue
            leaks += [f"line {number}: {what}" for text, what in secrets.items() if text in line]
    if leaks:
        print(f"\nsecrets found in the log of this run ({log_file}):", *leaks[:20], sep="\n  ")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each test's runs against the upstreams it is marked for (Dovecot by default)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if stores.on_postgres() and item.get_closest_marker("sqlite_only"):
            dropped.append(item)
            continue
        variant = getattr(item, "callspec", None) and item.callspec.params.get("upstream")
        marker = item.get_closest_marker("upstreams")
        wanted = marker.args if marker else tuple(DOVECOT_VARIANTS)
        (dropped if variant and variant not in wanted else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=[*DOVECOT_VARIANTS, CYRUS])
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    server: Upstream
    if request.param == CYRUS:
        require_cyrus()
        server = Cyrus(dict(SPARE_ACCOUNTS))
    else:
        server = Dovecot(dict(SPARE_ACCOUNTS), hide_capabilities=DOVECOT_VARIANTS[request.param])
    with server:
        server.spare = list(SPARE_ACCOUNTS.items())  # type: ignore[union-attr]
        yield server


@pytest.fixture(scope="session")
def bridge(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeServer]:
    with BridgeServer(upstream.host, upstream.port, tmp_path_factory.mktemp("data")) as server:
        yield server


@pytest.fixture
def account(upstream: Upstream) -> tuple[str, str]:
    """A username and password nobody else in this run uses."""
    return upstream.spare.pop(0)  # type: ignore[attr-defined]


@pytest.fixture
def jmap(bridge: BridgeServer, account: tuple[str, str]) -> Iterator[JmapClient]:
    client = bridge.client(*account)
    yield client
    client.close()


@pytest.fixture
def other(upstream: Upstream, account: tuple[str, str]) -> Iterator[IMAPClient]:
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
