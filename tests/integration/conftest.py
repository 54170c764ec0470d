"""Throwaway IMAP servers for integration tests that talk IMAP directly.

Fixtures (all servers run on 127.0.0.1 with plain IMAP; see bridge/demo/dovecot.py and
bridge/demo/cyrus.py):

``dovecot`` (session)
    A Dovecot advertising every capability it has (CONDSTORE, QRESYNC, LIST-STATUS, ...).
    Users: ``alice`` / ``alice-pw`` and ``bob`` / ``bob-pw`` (``USERS`` below).
``dovecot_nocondstore`` (session)
    The same users on a second Dovecot that does not advertise CONDSTORE and QRESYNC
    (it would still accept them: tests check that bridge obeys the advertised list).
``dovecot_factory`` (session)
    ``dovecot_factory(users=None, hide=())`` starts one more Dovecot with the given users
    (default ``USERS``) and hidden capabilities; all are stopped at the end of the session.
    Use it for a server a test may change (its passwd file, say) or for other capability sets.
``dovecot_login_failures`` (session)
    A separate Dovecot (same users, all capabilities) for tests that fail logins on
    purpose: Dovecot's auth penalty delays every later login from the failing IP, up to
    15 s, so wrong passwords sent to ``dovecot`` would slow down the tests that follow.
``cyrus`` (session)
    A Cyrus IMAP 3.6 with the same users (OBJECTID, CONDSTORE, QRESYNC, no NOTIFY),
    unpacked by .ci/install-cyrus; the fixture unpacks it if missing.
``imap_server`` (session, parametrized)
    ``dovecot``, then ``cyrus``: for tests of IMAP behaviour that every server must pass.
``gmail_front`` (session)
    A Gmail-shaped upstream (bridge/demo/gmail.py): Gmail's folders on a Dovecot of its
    own, behind a front speaking X-GM-EXT-1. Users: ``GMAIL_USERS``.
``imap`` (function)
    A raw ``imapclient.IMAPClient`` logged in as alice on ``dovecot``: "another client"
    changing things behind bridge's back. Logged out afterwards.

The servers are shared by the whole session: a test should work in folders of its own
(unique names) rather than assume INBOX is empty.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterable, Iterator

import pytest
from imapclient import IMAPClient

from bridge.demo.cyrus import Cyrus
from bridge.demo.dovecot import Dovecot
from bridge.demo.gmail import GmailFront, gmail_dovecot
from bridge.demo.imap4d import Imap4d
from tests.integration.upstreams import Upstream, require_cyrus

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
NO_CONDSTORE = ("CONDSTORE", "QRESYNC")
GMAIL_USERS = {"gina": "gina-pw", "gus": "gus-pw", "gail": "gail-pw"}


def _require_dovecot() -> None:
    if shutil.which("dovecot") is None:
        # A missing server is a broken setup, not a test to pass over: .ci/run installs it.
        pytest.fail("dovecot is not installed (bash .ci/run installs it)")


@pytest.fixture(scope="session")
def dovecot_factory() -> Iterator[Callable[..., Dovecot]]:
    started: list[Dovecot] = []

    def start(users: dict[str, str] | None = None, hide: Iterable[str] = ()) -> Dovecot:
        _require_dovecot()
        server = Dovecot(dict(users or USERS), hide_capabilities=tuple(hide))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def dovecot(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    return dovecot_factory()


@pytest.fixture(scope="session")
def dovecot_nocondstore(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    return dovecot_factory(hide=NO_CONDSTORE)


@pytest.fixture(scope="session")
def dovecot_login_failures(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    return dovecot_factory()


@pytest.fixture(scope="session")
def cyrus() -> Iterator[Cyrus]:
    require_cyrus()
    with Cyrus(dict(USERS)) as server:
        yield server


@pytest.fixture(scope="session", params=["dovecot", "cyrus"])
def imap_server(request: pytest.FixtureRequest) -> Upstream:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def gmail_front() -> Iterator[GmailFront]:
    _require_dovecot()
    with gmail_dovecot(GMAIL_USERS) as dovecot, GmailFront(dovecot) as front:
        yield front


@contextlib.contextmanager
def logged_in(
    server: Upstream | Imap4d | GmailFront, user: str, password: str
) -> Iterator[IMAPClient]:
    """A raw IMAP client logged in on ``server``, logged out at the end."""
    client = IMAPClient(server.host, port=server.port, ssl=False)
    client.login(user, password)
    yield client
    with contextlib.suppress(Exception):
        client.logout()


@pytest.fixture
def imap(dovecot: Dovecot) -> Iterator[IMAPClient]:
    with logged_in(dovecot, "alice", USERS["alice"]) as client:
        yield client


# -- GNU imap4d: a minimal IMAP server (see bridge/demo/imap4d.py) --------------------------
# ``imap4d`` (session): Maildir folders Drafts, Sent, Trash, Junk and Archive, no SPECIAL-USE;
# logins are ``name@imap4d.test`` (``Imap4d.login``).
# ``imap4d_account`` (function): a (login, password) no other test uses.
# ``imap4d_other`` (function): a raw IMAPClient logged in as that account, logged out after.

IMAP4D_USERS = {f"user{number:02d}": f"secret-{number:02d}" for number in range(1, 31)}


@pytest.fixture(scope="session")
def imap4d() -> Iterator[Imap4d]:
    if shutil.which("imap4d") is None:
        pytest.fail("imap4d is not installed (bash .ci/run installs mailutils-imap4d)")
    with Imap4d(dict(IMAP4D_USERS)) as server:
        yield server


@pytest.fixture(scope="session")
def imap4d_spare(imap4d: Imap4d) -> list[tuple[str, str]]:
    return [(imap4d.login(user), password) for user, password in IMAP4D_USERS.items()]


@pytest.fixture
def imap4d_account(imap4d_spare: list[tuple[str, str]]) -> tuple[str, str]:
    return imap4d_spare.pop(0)


@pytest.fixture
def imap4d_other(imap4d: Imap4d, imap4d_account: tuple[str, str]) -> Iterator[IMAPClient]:
    with logged_in(imap4d, *imap4d_account) as client:
        yield client
