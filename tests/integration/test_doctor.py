"""`bridge doctor` against the test Dovecots: what it names, its exit status, and that it
changes nothing in the mailbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.cli import PASSWORD_VARIABLE
from bridge.demo.dovecot import Dovecot, free_port
from bridge.demo.imap4d import Imap4d
from tests.integration.conftest import USERS


def run_doctor(*args: str, password: str = USERS["alice"]) -> tuple[int, str]:
    """Run ``bridge doctor`` as a user would (a process of its own, the password in its
    variable); (exit status, stdout). The password shows nowhere."""
    environment = {**os.environ, PASSWORD_VARIABLE: password}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "doctor", "--upstream-host", "127.0.0.1", *args],
        env=environment, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert password not in done.stdout + done.stderr
    return done.returncode, done.stdout


def doctor(server: Dovecot | None, *args: str, password: str = USERS["alice"]) -> tuple[int, str]:
    """``bridge doctor`` against ``server``'s plain IMAP port (None: a port nobody serves)."""
    port = server.port if server else free_port()
    return run_doctor(
        "--upstream-port", str(port), "--upstream-tls", "plain", *args, password=password
    )


def line_of(output: str, label: str) -> str:
    """The report line that starts with ``label`` (a feature name or a field)."""
    found = [line.strip() for line in output.splitlines() if line.strip().startswith(label)]
    assert found, f"no line {label!r} in:\n{output}"
    return found[0]


def words(line: str) -> list[str]:
    return line.split()


def _statuses(client: IMAPClient) -> dict[str, Any]:
    items = ["MESSAGES", "UNSEEN", "UIDNEXT", "HIGHESTMODSEQ"]
    return {
        name: client.folder_status(name, items)
        for flags, _, name in client.list_folders()
        if b"\\Noselect" not in flags and b"\\NonExistent" not in flags
    }


def _seed(server: Dovecot, count: int) -> str:
    """A folder of its own with ``count`` unread messages, so that a sync has mail to read."""
    folder = f"Doctor-{uuid.uuid4().hex[:8]}"
    with IMAPClient(server.host, port=server.port, ssl=False) as client:
        client.login("alice", USERS["alice"])
        client.create_folder(folder)
        client.multiappend(
            folder,
            [
                f"Subject: doctor {n}\r\nMessage-ID: <{n}@doctor>\r\n\r\nhi\r\n".encode()
                for n in range(count)
            ],
        )
    return folder


def test_full_dovecot(dovecot: Dovecot) -> None:
    _seed(dovecot, 3)
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False) as client:
        client.login("alice", USERS["alice"])
        before = _statuses(client)
        code, output = doctor(dovecot, "--user", "alice")
        after = _statuses(client)
    assert code == 0, output
    # Read-only: no folder's messages, unread count, UIDs or mod-sequence moved.
    assert after == before
    assert line_of(output, "login:") == "login:        ok as alice"
    assert line_of(output, "separator:") == "separator:    /"
    capabilities = output[output.index("capabilities:") : output.index("separator:")].split()
    assert {"CONDSTORE", "QRESYNC", "NOTIFY", "SORT=DISPLAY"} <= set(capabilities)
    assert line_of(output, "object ids:") == "object ids:   DOVECOT: X-GUID, folders X-GUID"
    assert "INBOX=inbox" in line_of(output, "roles:")
    assert words(line_of(output, "Email/changes"))[1:3] == ["full", "QRESYNC:"]
    assert line_of(output, "Mailbox ids").endswith("full    stable (X-GUID)")
    assert "server X-GUID" in line_of(output, "Email ids")
    assert "computed by bridge" in line_of(output, "Threads")
    assert words(line_of(output, "Push"))[1:3] == ["full", "NOTIFY:"]
    assert line_of(output, "Search").endswith("server SEARCH, CHARSET UTF-8 ok")
    assert "SORT=DISPLAY" in line_of(output, "Sort by from/to")
    assert words(line_of(output, "Quota"))[1] == "full"
    assert line_of(output, "Full sync of").startswith("Full sync of ")
    assert "UID FETCH 1:* (UID FLAGS MODSEQ X-GUID RFC822.SIZE)" in output
    assert line_of(output, "Result:") == "Result: bridge can use this upstream"


def test_dovecot_without_condstore(dovecot_nocondstore: Dovecot) -> None:
    _seed(dovecot_nocondstore, 3)
    code, output = doctor(dovecot_nocondstore, "--user", "alice")
    assert code == 0, output
    capabilities = output[output.index("capabilities:") : output.index("separator:")].split()
    assert "CONDSTORE" not in capabilities and "QRESYNC" not in capabilities
    assert line_of(output, "Email/changes").split(None, 1)[1] == (
        "slower  no CONDSTORE: INBOX followed from unsolicited FETCH/EXPUNGE while kept open; "
        "other folders' flag changes found by background scans every 60 s"
    )
    assert "UID FETCH 1:* (UID FLAGS X-GUID RFC822.SIZE)" in output
    assert line_of(output, "Push").split(None, 1)[1] == (
        "slower  NOTIFY without CONDSTORE goes unused: IDLE on INBOX + one LIST-STATUS every 1 s"
    )


def test_imap4d(
    imap4d: Imap4d, imap4d_account: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    login, password = imap4d_account
    monkeypatch.setenv("BRIDGE_FLAG_SCAN_INTERVAL", "30")
    code, output = run_doctor(
        "--upstream-port", str(imap4d.port), "--upstream-tls", "plain", "--user", login,
        password=password,
    )  # fmt: skip
    assert code == 0, output
    assert line_of(output, "Email/changes").endswith("found by background scans every 30 s")
    assert line_of(output, "Mailbox ids").split(None, 2)[2] == (
        "slower  stable while the name stays (kept in the cache); a rename by another client "
        "is matched by UIDVALIDITY and message count"
    )
    assert line_of(output, "Push").endswith("slower  IDLE on INBOX + pipelined STATUS every 1 s")
    lifted = "others' \\Deleted marks lifted around EXPUNGE, a small race"
    assert line_of(output, "Email/set mailboxIds").endswith(
        f"slower  no MOVE, no UIDPLUS: COPY, then {lifted}"
    )
    assert line_of(output, "Email/set destroy").endswith(f"slower  no UIDPLUS: {lifted}")
    assert line_of(output, "Result:") == "Result: bridge can use this upstream"


def test_json_report(dovecot_factory: Callable[..., Dovecot]) -> None:
    # A server of its own: 400 messages in the shared one would change other tests' syncs.
    server = dovecot_factory()
    folder = _seed(server, 400)
    code, output = doctor(server, "--user", "alice", "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["usable"] is True
    assert "QRESYNC" in report["imap"]["capabilities"]
    assert report["imap"]["tls_mode"] == "plain" and "tls" not in report["imap"]
    verdicts = {feature["name"]: feature["level"] for feature in report["features"]}
    assert verdicts["Email/changes"] == "full" and verdicts["Mailbox ids"] == "full"
    assert report["folders"]["largest"] == folder
    assert report["folders"]["largest_messages"] == 400
    assert report["sync"]["messages"] == 400 and report["sync"]["header_sample"] == 200


def test_bad_password_fails_with_the_reason(dovecot_login_failures: Dovecot) -> None:
    code, output = doctor(dovecot_login_failures, "--user", "alice", password="not-her-password")
    assert code == 1
    assert line_of(output, "login:") == (
        "login:        FAILED: authentication failed [AUTHENTICATIONFAILED]"
    )
    assert line_of(output, "Result:") == "Result: bridge cannot use this upstream"


def test_unreachable_upstream() -> None:
    code, output = doctor(None, "--user", "alice")
    assert code == 1
    assert line_of(output, "connect:") == "connect:      FAILED: connection refused"


def test_without_a_user_only_connects(dovecot: Dovecot) -> None:
    code, output = doctor(dovecot)
    assert code == 0
    assert "login:" not in output and "JMAP features" not in output
    assert line_of(output, "connect:") == "connect:      ok, no TLS"
