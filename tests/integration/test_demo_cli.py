"""The README's first command: `bridge demo` serves JMAP in front of a demo Dovecot."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bridge.cli import DEMO_DOMAIN, DEMO_USERS
from bridge.mail.capabilities import SUBMISSION
from tests.integration.server import USING, JmapClient, free_port


def test_demo_serves_sample_mail(tmp_path: Path) -> None:
    port = free_port()
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115 - handed to the child
    # Its cache goes in a directory of its own under TMPDIR, which it removes at the end.
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "demo", "--listen-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, "TMPDIR": str(temporary)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/.well-known/jmap").status_code < 500:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.2)
        jmap = JmapClient(url, "alice", DEMO_USERS["alice"])
        boxes = jmap.mailboxes()
        assert {"INBOX", "Sent", "Work", "Work/Projects", "Archive"} <= set(boxes)
        assert boxes["INBOX"]["totalEmails"] > 10
        assert boxes["INBOX"]["unreadEmails"] < boxes["INBOX"]["totalEmails"]
        send_to_bob(jmap, boxes["Drafts"]["id"])
        jmap.close()
        bob = JmapClient(url, "bob", DEMO_USERS["bob"])
        inbox = bob.mailboxes()["INBOX"]["id"]
        found = bob.call("Email/query", {"filter": {"inMailbox": inbox, "subject": "Lunch?"}})
        [email] = bob.call("Email/get", {"ids": found["ids"], "properties": ["from"]})["list"]
        assert email["from"] == [{"name": "Alice", "email": f"alice@{DEMO_DOMAIN}"}]
        bob.close()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=20)
        log.close()
    # Ctrl-C stops the demo Dovecot too, and removes the cache of the demo mail.
    printed = (tmp_path / "demo.log").read_text()
    imap_port = int(printed.split("Dovecot (IMAP) on 127.0.0.1:")[1].split()[0])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", imap_port)) != 0
    assert list(temporary.iterdir()) == []


def send_to_bob(alice: JmapClient, drafts: str) -> None:
    """alice writes to bob through EmailSubmission; the demo delivers it locally."""
    account = alice.account_id
    identities = alice.request([["Identity/get", {"accountId": account}, "i"]],
                               using=[*USING, SUBMISSION])  # fmt: skip
    [identity] = identities[0][1]["list"]
    assert identity["email"] == f"alice@{DEMO_DOMAIN}"
    draft = {
        "mailboxIds": {drafts: True}, "keywords": {"$draft": True}, "subject": "Lunch?",
        "from": [{"name": "Alice", "email": identity["email"]}],
        "to": [{"email": f"bob@{DEMO_DOMAIN}"}],
        "bodyValues": {"t": {"value": "Noon?"}}, "textBody": [{"partId": "t"}],
    }  # fmt: skip
    responses = alice.request([
        ["Email/set", {"accountId": account, "create": {"d": draft}}, "e"],
        ["EmailSubmission/set", {"accountId": account, "create": {
            "s": {"identityId": identity["id"], "emailId": "#d"},
        }}, "s"],
    ], using=[*USING, SUBMISSION])  # fmt: skip
    assert "s" in (responses[1][1].get("created") or {}), responses
