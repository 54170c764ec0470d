"""An SMTP server for tests (aiosmtpd in a thread) that records what reaches it.

Dovecot's submission service relays to it, or bridge talks to it directly. It refuses
the sender and recipients a test names, and can ask for a login it checks itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from bridge.demo.dovecot import free_port


@dataclass(frozen=True)
class Arrival:
    mail_from: str
    rcpt_to: list[str]
    mail_options: list[str]
    content: bytes  # as received, after dot-unstuffing

    @property
    def message(self) -> bytes:
        """The message without the Received field a relay put on top."""
        if not self.content.startswith(b"Received:"):
            return self.content
        lines = self.content.split(b"\r\n")
        index = 1
        while lines[index][:1] in (b" ", b"\t"):
            index += 1
        return b"\r\n".join(lines[index:])


@dataclass
class _Handler:
    refuse_senders: set[str] = field(default_factory=set)
    refuse_recipients: set[str] = field(default_factory=set)
    arrivals: list[Arrival] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refuse_senders:
            return "553 5.7.1 sender not allowed here"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 sender ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refuse_recipients:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 recipient ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.lock:
            self.arrivals.append(
                Arrival(str(envelope.mail_from), list(envelope.rcpt_tos),
                        list(envelope.mail_options), content)
            )  # fmt: skip
        return "250 2.0.0 queued as test"


class SmtpSink:
    """``with SmtpSink() as sink``: listening on 127.0.0.1:``sink.port`` until the end.
    With ``logins``, only those may send (AUTH without TLS, as the loopback tests want)."""

    def __init__(self, *, logins: dict[str, str] | None = None, smtputf8: bool = True) -> None:
        self.port = free_port()
        self.handler = _Handler()
        self._logins = logins
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if logins is not None:
            kwargs |= {"auth_required": True, "auth_require_tls": False,
                      "authenticator": self._authenticate}  # fmt: skip
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = (data.login.decode(), data.password.decode())
        self.handler.logins.append(login)
        assert self._logins is not None
        return AuthResult(success=self._logins.get(login[0]) == login[1], handled=False)

    @property
    def arrivals(self) -> list[Arrival]:
        with self.handler.lock:
            return list(self.handler.arrivals)

    def refuse(self, *, senders: Iterable[str] = (), recipients: Iterable[str] = ()) -> None:
        self.handler.refuse_senders |= {a.lower() for a in senders}
        self.handler.refuse_recipients |= {a.lower() for a in recipients}

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Arrival]:
        """The arrivals once there are ``count`` of them (a relay may lag the reply)."""
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.arrivals

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
