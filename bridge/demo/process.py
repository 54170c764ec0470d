"""What the throwaway servers (Dovecot, Cyrus, imap4d) share: a base directory and a port, waiting
for the IMAP greeting, and stopping a master with every process it started."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

# Ports handed out by free_port in this process: a server started later must not get one
# that another, not yet listening, was given.
_handed_out: set[int] = set()
_LOWEST_PORT = 10000
# The Fetch standard's "bad ports" above it (browsers and node's fetch refuse to connect
# there: "bad port"); jmap-jam in the tests failed once on a bridge given 10080.
_BAD_PORTS = frozenset({10080})


def free_port() -> int:
    """A loopback TCP port nothing listens on, for a server about to start. It comes from
    below the kernel's range for the local ports of outgoing connections: a port the kernel
    picks itself (bind to 0) can be taken by any connect() between our choosing it and the
    server binding it, and was (a test's metrics listener: "Address already in use")."""
    below = _outgoing_ports_start()
    for _ in range(500):
        wanted = random.randrange(_LOWEST_PORT, below) if below > _LOWEST_PORT + 1000 else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", wanted))
            except OSError:
                continue
            port = sock.getsockname()[1]
        if port not in _handed_out and port not in _BAD_PORTS:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port")


def _outgoing_ports_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    except OSError:
        return 0
    return int(text.split()[0])


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
    process: subprocess.Popen[bytes] | None,
    host: str,
    port: int,
    timeout: float,
    read_log: Callable[[], str],
) -> None:
    """Until ``port`` answers "* OK"; RuntimeError with the log if the master exits first
    or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited early: {read_log()}")
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                if sock.recv(256).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no IMAP greeting on port {port}: {read_log()}")


def stop_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM to the master's whole process group (services may outlive a master killed
    alone), SIGKILL after 10 s."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class ThrowawayServer(ABC):
    """A server master for a fixed set of users, everything it writes under one base
    directory (a temporary one unless given, removed by ``stop()``)."""

    users: dict[str, str]
    # Capabilities the server is told to leave out, to test bridge's fallbacks.
    hide_capabilities: Iterable[str] = ()
    port: int = 0
    base_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    # The temporary base's name prefix: Unix socket paths are limited to 108 bytes.
    base_prefix: ClassVar[str] = "srv"

    def __post_init__(self) -> None:
        self._own_base = self.base_dir is None
        self.base_dir = Path(self.base_dir or tempfile.mkdtemp(prefix=self.base_prefix, dir="/tmp"))
        self.port = self.port or free_port()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @abstractmethod
    def start(self, timeout: float = 15.0) -> Self:
        """Write the config, start the master, return once it greets on ``port``."""

    def stop(self) -> None:
        stop_group(self.process)
        self.process = None
        if self._own_base and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
