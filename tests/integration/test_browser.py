"""A real browser (Debian's chromium, driven by Playwright) runs a small JMAP webmail
(tests/integration/web/) served from another origin than bridge's, as a webmail on its
own site would be: bridge must answer it through CORS (``cors_origins``), and its push
stream must open with the token in the URL, since a browser's EventSource sends no
Authorization header and bridge's token cookie does not travel to another site.

Upstream is the demo's wiring: a Dovecot whose submission service relays to the demo's
local delivery, so that a message sent to bob lands in bob's INBOX. On failure the page is
saved as a screenshot under the test's tmp dir; its path is in the failure message.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from imapclient import IMAPClient
from playwright.sync_api import Browser, Page, sync_playwright

from bridge.cli import DEMO_DOMAIN, DEMO_USERS
from bridge.demo.dovecot import Dovecot, free_port
from bridge.demo.relay import LocalDelivery
from bridge.demo.seed import seed_demo
from tests.integration.server import BridgeServer

WEB = Path(__file__).parent / "web"
CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 10_000


@pytest.fixture(scope="module")
def demo_dovecot() -> Iterator[Dovecot]:
    relay_port = free_port()
    with (
        Dovecot(dict(DEMO_USERS), relay_port=relay_port) as dovecot,
        LocalDelivery(dovecot, DEMO_DOMAIN, DEMO_USERS, relay_port),
    ):
        seed_demo(dovecot, "alice")
        yield dovecot


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The webmail's files over HTTP on 127.0.0.1, named "localhost" against bridge's
    "127.0.0.1": another origin and another site, which is what keeps bridge's SameSite
    cookie away and makes the page use ?access_token=."""
    files = functools.partial(_QuietFiles, directory=str(WEB))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), files) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://localhost:{server.server_address[1]}"
        server.shutdown()


@pytest.fixture(scope="module")
def bridge(
    demo_dovecot: Dovecot, page_origin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeServer]:
    with BridgeServer(
        demo_dovecot.host, demo_dovecot.port, tmp_path_factory.mktemp("browser"),
        submission_port=demo_dovecot.submission_port, submission_tls="plain",
        mail_domain=DEMO_DOMAIN, cors_origins=[page_origin],
    ) as server:  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is not installed (bash .ci/run installs it)")
    with sync_playwright() as playwright:
        # Playwright's own browser builds are not used (no download here): Debian's chromium
        # is. Without its sandbox, which cannot start as root.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, chromium_sandbox=False)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


@contextlib.contextmanager
def screenshot_on_failure(page: Page, tmp_path: Path) -> Iterator[None]:
    """A failure carries a screenshot's path, what the page showed as its error, and the
    browser's console (where a CORS refusal is reported)."""
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        yield
    except BaseException as failure:
        shot = tmp_path / "browser-failure.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the page: {shot}")
        failure.add_note(f"screenshot of the page: {shot}")
        failure.add_note(f"the page's error: {page.inner_text('#error')!r}")
        failure.add_note("browser console:\n" + "\n".join(console))
        raise


@pytest.fixture
def alice(demo_dovecot: Dovecot) -> Iterator[IMAPClient]:
    """Another client of alice's, on raw IMAP."""
    imap = IMAPClient(demo_dovecot.host, port=demo_dovecot.port, ssl=False)
    imap.login("alice", DEMO_USERS["alice"])
    yield imap
    imap.logout()


def append(imap: IMAPClient, subject: str, body: str, received: datetime | None = None) -> datetime:
    """Deliver a message to INBOX; when it was received (now unless given)."""
    received = received or datetime.now(UTC)
    message = EmailMessage()
    message["From"] = f"Carol <carol@{DEMO_DOMAIN}>"
    message["To"] = f"alice@{DEMO_DOMAIN}"
    message["Subject"] = subject
    message.set_content(body)
    imap.append("INBOX", message.as_bytes(), msg_time=received)
    return received


def arrived(dovecot: Dovecot, user: str, subject: str, timeout: float = 10.0) -> bytes:
    """The message with this subject in ``user``'s INBOX, read over raw IMAP once it is there."""
    imap = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
    imap.login(user, DEMO_USERS[user])
    try:
        imap.select_folder("INBOX", readonly=True)
        deadline = time.monotonic() + timeout
        while not (uids := imap.search(["SUBJECT", subject])):
            assert time.monotonic() < deadline, f"{subject!r} did not reach {user}'s INBOX"
            time.sleep(0.2)
        [fetched] = imap.fetch(uids, ["BODY[]"]).values()
        return fetched[b"BODY[]"]
    finally:
        imap.logout()


def test_webmail_on_another_origin(
    page: Page,
    page_origin: str,
    bridge: BridgeServer,
    demo_dovecot: Dovecot,
    alice: IMAPClient,
    tmp_path: Path,
) -> None:
    with screenshot_on_failure(page, tmp_path):
        agenda_received = append(alice, "Agenda for Friday", "Coffee at ten, then the roadmap.")

        page.goto(f"{page_origin}/index.html?bridge={bridge.url}")
        page.fill("#username", "alice")
        page.fill("#password", DEMO_USERS["alice"])
        page.click("#login button")
        # The INBOX, newest first: the message just appended heads the list.
        newest = page.locator("#inbox li").first
        newest.wait_for()
        assert newest.inner_text() == "Agenda for Friday"
        assert page.locator("#inbox li").count() > 10

        newest.click()
        page.wait_for_function("document.getElementById('body').textContent !== ''")
        assert page.inner_text("#subject") == "Agenda for Friday"
        assert page.inner_text("#body").strip() == "Coffee at ten, then the roadmap."
        assert page.inner_text("#from") == f"carol@{DEMO_DOMAIN}"

        page.fill("#to", f"bob@{DEMO_DOMAIN}")
        page.fill("#compose-subject", "Browser lunch")
        page.fill("#compose-body", "Sent from a page on another origin.")
        page.click("#compose button")
        page.wait_for_function("document.getElementById('sent').textContent !== ''")
        assert page.inner_text("#sent") == "Sent: Browser lunch"
        assert page.inner_text("#error") == ""
        # bob's mailbox, read over raw IMAP: the message arrived, from alice, with its body.
        raw = arrived(demo_dovecot, "bob", "Browser lunch")
        assert b"Sent from a page on another origin." in raw
        assert f"alice@{DEMO_DOMAIN}".encode() in raw
        # onSuccessUpdateEmail moved alice's copy from Drafts to Sent, no longer a draft.
        alice.select_folder("Sent", readonly=True)
        [flags] = alice.get_flags(alice.search(["SUBJECT", "Browser lunch"])).values()
        assert b"\\Draft" not in flags
        alice.select_folder("Drafts", readonly=True)
        assert alice.search(["SUBJECT", "Browser lunch"]) == []

        # Push: another client delivers to alice's INBOX; the page hears a state event on its
        # EventSource and shows the new message on top without being asked to.
        page.wait_for_function("document.getElementById('push').textContent === 'open'")
        heard = int(page.inner_text("#pushes"))
        # A later receivedAt than the agenda's even within its second (IMAP keeps seconds),
        # where a tie would leave the order of the two to the server.
        later = max(datetime.now(UTC), agenda_received + timedelta(seconds=1))
        append(alice, "Pushed while you watched", "Hello from another client.", later)
        page.wait_for_function(
            "document.querySelector('#inbox li').textContent === 'Pushed while you watched'"
        )
        assert int(page.inner_text("#pushes")) > heard

        # Logging out revokes the token: the page's next call with it is refused, and the
        # refusal is readable across origins.
        revoked = page.evaluate("token")
        page.click("#logout")
        page.wait_for_function("document.getElementById('status').textContent !== ''")
        assert page.inner_text("#status") == "Logged out"
        status = page.evaluate(
            """(stale) => fetch(session.apiUrl, {method: "POST", body: "{}", headers:
                {Authorization: "Bearer " + stale, "Content-Type": "application/json"}})
              .then((answer) => answer.status)""",
            revoked,
        )
        assert status == 401
