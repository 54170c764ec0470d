"""``python -m bridge serve`` as a process of its own, in front of a Dovecot: for tests that
read its logs, and for load tests that measure it alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.server import free_port


class BridgeProcess:
    def __init__(
        self, imap_host: str, imap_port: int, data_dir: Path, log_path: Path, *flags: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.command = [
            sys.executable, "-m", "bridge", "serve", "--upstream-host", imap_host,
            "--upstream-port", str(imap_port), "--upstream-tls", "plain",
            "--listen-port", str(self.port), "--data-dir", str(data_dir), *flags,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> BridgeProcess:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/.well-known/jmap").status_code < 500:
                    return self
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "bridge did not start"
            time.sleep(0.1)

    def rss(self) -> int:
        """Resident memory of the process now, in octets."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(line.split()[1]) * 1024

    def stop(self) -> int:
        """Ctrl-C, as an operator would; the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> BridgeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def established(port: int) -> int:
    """TCP connections to local ``port`` now open (the server's side, from /proc/net/tcp):
    how many sessions a server on this machine holds, counted from outside it."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count
