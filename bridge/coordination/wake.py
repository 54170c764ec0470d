"""Waking the other processes on one machine when states are published: each process that
listens binds a Unix datagram socket in a directory they share, and a publisher sends
one octet to every socket there. The listener still polls the table (bridge.coordination
.sqlite): a wake-up only cuts the wait, so a lost datagram or a socket path too long to
bind (108 octets) costs latency, never news."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import select
import socket
from pathlib import Path

log = logging.getLogger("bridge.coordination")


class Wakeups:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        self._own: Path | None = None
        self._listener: socket.socket | None = None

    def listen(self) -> None:
        """Bind this process's socket; without it (a path too long) the poll alone runs."""
        path = self.directory / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            listener.bind(str(path))
        except OSError as exc:
            log.info("no wake-up socket (%s): published states are polled only", exc)
            listener.close()
            return
        listener.setblocking(False)
        self._own, self._listener = path, listener

    def wait(self, timeout: float) -> None:
        """Until a wake-up arrives, or ``timeout`` seconds."""
        if self._listener is None:
            select.select([], [], [], timeout)
            return
        readable, _, _ = select.select([self._listener], [], [], timeout)
        if readable:
            with contextlib.suppress(BlockingIOError):
                while self._listener.recv(64):
                    pass

    def wake_others(self) -> None:
        for path in self.directory.glob("*.sock"):
            if path == self._own:
                continue
            try:
                self._sender.sendto(b".", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                # Nobody reads it: its process died without removing it.
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            except (BlockingIOError, OSError):
                pass  # a full queue wakes its reader anyway

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._own is not None:
            with contextlib.suppress(FileNotFoundError):
                self._own.unlink()
        self._sender.close()
