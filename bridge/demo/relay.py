"""The demo's mail delivery: the SMTP server the demo Dovecot's submission service relays
to. It hands each message to Dovecot's LDA for every local recipient (so their Sieve
rules run, as at a real delivery) and refuses every other address: the demo never sends
mail off the machine.

Dovecot has no LMTP service in the packages CI installs, and its submission relay speaks
only SMTP, hence this small receiver (RFC 5321's EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
QUIT) rather than a new dependency. It offers no extension but 8BITMIME, so the relay
sends DATA (not BDAT) and no pipelining.
"""

from __future__ import annotations

import logging
import re
import socketserver
import threading
from collections.abc import Iterable

from bridge.demo.dovecot import Dovecot, free_port

log = logging.getLogger("bridge.demo")

_PATH = re.compile(rb"(?i)(FROM|TO):\s*<([^<>\s]*)>")
_MAX_LINE = 65536


class LocalDelivery:
    """``with LocalDelivery(dovecot, domain) as relay``: serving on 127.0.0.1:relay.port.
    ``user@domain`` reaches ``user`` when ``user`` is one of ``users``."""

    def __init__(
        self, dovecot: Dovecot, domain: str, users: Iterable[str], port: int | None = None
    ) -> None:
        self.dovecot = dovecot
        self.domain = domain.lower()
        self.users = {user.lower(): user for user in users}
        self.port = port or free_port()
        relay = self

        class Handler(_SmtpHandler):
            delivery = relay

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def user_for(self, address: str) -> str | None:
        local, _, domain = address.rpartition("@")
        return self.users.get(local.lower()) if domain.lower() == self.domain else None

    def deliver(self, sender: str, users: list[str], message: bytes) -> str | None:
        """Deliver to every user; the failures, or None."""
        failed = []
        for user in users:
            try:
                self.dovecot.deliver(user, message, sender, f"{user}@{self.domain}")
            except (RuntimeError, OSError) as exc:
                log.warning("demo delivery to %s failed: %s", user, exc)
                failed.append(user)
        return ", ".join(failed) or None

    def __enter__(self) -> LocalDelivery:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _SmtpHandler(socketserver.StreamRequestHandler):
    delivery: LocalDelivery

    def _say(self, *lines: str) -> None:
        text = "".join(f"{line[:3]}{'-' if i < len(lines) - 1 else ' '}{line[4:]}\r\n"
                       for i, line in enumerate(lines))  # fmt: skip
        self.wfile.write(text.encode())

    def handle(self) -> None:
        self._say("220 demo delivery ready")
        sender: str | None = None
        users: list[str] = []
        while line := self.rfile.readline(_MAX_LINE):
            verb, _, argument = line.rstrip(b"\r\n").partition(b" ")
            verb = verb.upper()
            path = _PATH.match(argument)
            if verb == b"EHLO":
                sender, users = None, []
                self._say("250 demo.localhost", "250 8BITMIME")
            elif verb == b"HELO":
                sender, users = None, []
                self._say("250 demo.localhost")
            elif verb == b"MAIL" and path and path.group(1).upper() == b"FROM":
                sender, users = path.group(2).decode("utf-8", "replace"), []
                self._say("250 2.1.0 sender ok")
            elif verb == b"RCPT" and path and path.group(1).upper() == b"TO":
                user = self.delivery.user_for(path.group(2).decode("utf-8", "replace"))
                if sender is None:
                    self._say("503 5.5.1 MAIL first")
                elif user is None:
                    self._say("550 5.1.1 the demo delivers only to its own users")
                else:
                    users.append(user)
                    self._say("250 2.1.5 recipient ok")
            elif verb == b"DATA":
                if sender is None or not users:
                    self._say("503 5.5.1 MAIL and RCPT first")
                    continue
                self._say("354 end with a dot")
                message = self._message()
                if message is None:
                    return
                failed = self.delivery.deliver(sender, users, message)
                sender, users = None, []
                self._say(f"451 4.3.0 delivery failed for {failed}" if failed
                          else "250 2.0.0 delivered")  # fmt: skip
            elif verb == b"RSET":
                sender, users = None, []
                self._say("250 2.0.0 reset")
            elif verb == b"NOOP":
                self._say("250 2.0.0 ok")
            elif verb == b"QUIT":
                self._say("221 2.0.0 bye")
                return
            else:
                self._say("502 5.5.2 not understood")

    def _message(self) -> bytes | None:
        """The lines up to the lone dot, unstuffed; None if the client went away. A line
        longer than a read is taken in pieces, and only a line's start is unstuffed."""
        lines: list[bytes] = []
        at_line_start = True
        while line := self.rfile.readline(_MAX_LINE):
            if at_line_start and line in (b".\r\n", b".\n"):
                return b"".join(lines)
            lines.append(line[1:] if at_line_start and line.startswith(b".") else line)
            at_line_start = line.endswith(b"\n")
        return None
