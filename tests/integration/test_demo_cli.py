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

from bridge.cli import DEMO_USERS
from tests.integration.server import JmapClient, free_port


def test_demo_serves_sample_mail(tmp_path: Path) -> None:
    port = free_port()
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "demo", "--listen-port", str(port),
         "--data-dir", str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
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
        jmap.close()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=20)
        log.close()
    # Ctrl-C stops the demo Dovecot too.
    printed = (tmp_path / "demo.log").read_text()
    imap_port = int(printed.split("Dovecot (IMAP) on 127.0.0.1:")[1].split()[0])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", imap_port)) != 0
