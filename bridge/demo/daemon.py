"""Running a throwaway server process for the demo and the tests: start it detached from
the caller's output, wait for its greeting, stop its whole process group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self


def start_daemon(argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, stdout and stderr to ``log_path``: a server
    keeping fd 2 open must never inherit a pipe a caller reads."""
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the process
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    finally:
        log.close()


def wait_for_greeting(
    process: subprocess.Popen[bytes],
    address: tuple[str, int],
    timeout: float,
    read_log: Callable[[], str],
) -> None:
    """Return once the server at ``address`` greets with ``* OK``; RuntimeError (with the
    log's tail) if the process dies first or ``timeout`` passes."""
    name = Path(process.args[0]).name if isinstance(process.args, list) else "server"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early: {read_log()}")
        try:
            with socket.create_connection(address, timeout=1) as sock:
                if sock.recv(256).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer on port {address[1]}: {read_log()}")


def stop_daemon(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole group (sessions may outlive a master killed alone), SIGKILL
    after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class ThrowawayServer:
    """What a throwaway server (Dovecot, imap4d) shares: stopping it removes the base
    directory it made, and ``with`` starts and stops it."""

    process: subprocess.Popen[bytes] | None
    base_dir: Path | None
    _own_base: bool

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None:
            stop_daemon(self.process)
        self.process = None
        if self._own_base and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
