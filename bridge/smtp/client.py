"""Sending one message by SMTP submission (RFC 6409) as the user: the only place that
imports smtplib.

One connection per message: implicit TLS or STARTTLS (plain only where the settings allow
it), EHLO, AUTH PLAIN (or LOGIN) with the user's own login, MAIL FROM, one RCPT TO per
recipient, DATA. The message goes to all of its recipients or to none: when the server
refuses any RCPT, RSET ends the transaction before DATA.

Commands are written here rather than through smtplib's ``login``/``sendmail``: those
encode credentials as ASCII only, try every mechanism in turn (each failure counts
against the user upstream), and re-quote addresses through ``email.utils``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import re
import smtplib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO, Literal

from bridge import connect_failure, deadline
from bridge.certificates import TlsInfo, tls_info
from bridge.connect_failure import explain
from bridge.endpoint import AccessToken, Endpoint, connect, oauth_login, sasl_plain

Stage = Literal["auth", "mail", "rcpt", "data"]

_ENHANCED_CODE = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3} ")
_DOT_AFTER_LF = re.compile(rb"\n\.")
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")
ACCEPTED_RCPT = (250, 251)
CHUNK = 1 << 20

log = logging.getLogger("bridge.smtp")


# The submission server's address and TLS mode.
SmtpEndpoint = Endpoint


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    def __str__(self) -> str:
        """RFC 8621 §7's smtpReply: the code, then the lines as one."""
        return f"{self.code} {self.text}".rstrip()

    @property
    def permanent(self) -> bool:
        return self.code >= 500


def reply_of(code: int, message: bytes) -> Reply:
    """smtplib's reply (lines without their codes, joined by LF) in RFC 8621 §7's form: an
    enhanced status code repeated on later lines is dropped, and the lines joined by a
    space."""
    lines = message.decode("utf-8", "replace").split("\n")
    repeated = _ENHANCED_CODE.match(lines[0])
    rest = [
        line[repeated.end() :] if repeated and line.startswith(repeated.group(0)) else line
        for line in lines[1:]
    ]
    return Reply(code, " ".join([lines[0], *rest]).strip())


class SmtpRefused(Exception):
    """The server refused the message at ``stage``; nothing was sent. ``refused`` holds the
    replies to the recipients it would not take, ``size_limit`` its advertised SIZE."""

    def __init__(
        self,
        stage: Stage,
        reply: Reply | None,
        description: str = "",
        refused: dict[str, Reply] | None = None,
        size_limit: int | None = None,
    ) -> None:
        super().__init__(description or str(reply))
        self.stage = stage
        self.reply = reply
        self.refused = refused or {}
        self.size_limit = size_limit


class SmtpUnavailable(Exception):
    """The server could not be reached, or failed in a way that says nothing about the
    message. ``maybe_sent`` when the connection failed after the message was handed over
    and before the server confirmed it."""

    def __init__(
        self, description: str, *, maybe_sent: bool = False, reason: str | None = None
    ) -> None:
        super().__init__(description)
        self.maybe_sent = maybe_sent
        # Why the connection could not be opened (bridge.connect_failure), where known.
        self.reason = reason


@dataclass(frozen=True)
class Sent:
    """The server took the message: the RCPT reply of each recipient, and DATA's."""

    recipients: dict[str, Reply]
    reply: Reply


def submit(
    endpoint: SmtpEndpoint,
    login: tuple[str, str],
    mail_from: str,
    rcpt_to: list[str],
    message: bytes | BinaryIO,
    *,
    chunk_size: int = CHUNK,
) -> Sent:
    """Send ``message`` (CRLF line ends) from ``mail_from`` to ``rcpt_to``. A file is sent
    from its start in pieces of ``chunk_size``, dot-stuffed as they go."""
    session = _Session(endpoint)
    handle = io.BytesIO(message) if isinstance(message, bytes) else message
    try:
        session.connect()
        session.authenticate(*login)
        return session.send(mail_from, rcpt_to, _Message(handle, chunk_size))
    except (OSError, smtplib.SMTPException) as exc:
        # SMTPException covers a dropped connection and an unparsable reply; OSError a
        # refused connection, a timeout and a failed TLS handshake.
        where = f"{endpoint.host}:{endpoint.port}"
        raise SmtpUnavailable(
            f"submission server {where}: {exc}", maybe_sent=session.handed_over
        ) from exc
    finally:
        session.close()


@dataclass(frozen=True)
class Probe:
    """What the submission server says of itself before anyone logs in (EHLO)."""

    extensions: dict[str, str]
    tls: TlsInfo | None


def probe(endpoint: SmtpEndpoint) -> Probe:
    """Connect, TLS as configured, EHLO, QUIT: nothing is sent, nobody logs in."""
    session = _Session(endpoint)
    try:
        session.connect()
        return Probe(dict(session.smtp.esmtp_features), tls_info(session.smtp.sock))
    except (OSError, smtplib.SMTPException) as exc:
        raise SmtpUnavailable(f"submission server {endpoint.address}: {exc}") from exc
    finally:
        session.close()


def _tls_socket(endpoint: SmtpEndpoint) -> socket.socket:
    session = _Session(endpoint)
    session.connect()
    return session.smtp.sock


def _time_left(timeout: float) -> float:
    """``timeout`` cut to the time left to the request (bridge.deadline); a TimeoutError
    (an OSError, as smtplib's own timeouts) once none is left."""
    if deadline.expired():
        raise TimeoutError("the request's time is up")
    return deadline.bounded(timeout)


class _Smtp(smtplib.SMTP):
    """smtplib over a socket from ``endpoint.connect`` (TCP, TLS if implicit, NODELAY).
    Every wait is cut to the time left to the request: the connect, and the reply to each
    command or piece of DATA (the socket's read timeout is set anew before each send)."""

    def __init__(self, endpoint: SmtpEndpoint) -> None:
        self.endpoint = endpoint
        # How long one reply may take: the greeting's, until connected.
        self.wait = endpoint.connect_timeout
        # A placeholder name: without one smtplib asks DNS for this host's FQDN, which can
        # take seconds. EHLO gets the connection's address literal instead (RFC 5321 §4.1.4).
        super().__init__(local_hostname="localhost", timeout=endpoint.connect_timeout)
        # The name STARTTLS checks the certificate against: smtplib takes it only from a
        # host given here, which would connect at once.
        self._host = endpoint.host

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = connect(replace(self.endpoint, connect_timeout=_time_left(self.wait)))
        sock.settimeout(_time_left(self.wait))  # for the greeting
        return sock

    def send(self, s: bytes | str) -> None:
        if self.sock is not None:
            self.sock.settimeout(_time_left(self.wait))
        super().send(s)


class _Session:
    def __init__(self, endpoint: SmtpEndpoint) -> None:
        self.endpoint = endpoint
        self.handed_over = False
        self.smtp = _Smtp(endpoint)

    def connect(self) -> None:
        smtp, endpoint = self.smtp, self.endpoint
        try:
            code, message = smtp.connect(endpoint.host, endpoint.port)
        except (OSError, smtplib.SMTPException) as exc:
            raise self._unavailable(exc, "greeting") from exc
        if code != 220:
            raise SmtpUnavailable(f"the submission server greeted with {reply_of(code, message)}")
        address = smtp.sock.getsockname()[0]
        smtp.local_hostname = f"[IPv6:{address}]" if ":" in address else f"[{address}]"
        self._ehlo()
        if endpoint.tls == "starttls":
            if not smtp.has_extn("starttls"):
                raise SmtpUnavailable("the submission server does not offer STARTTLS")
            try:
                smtp.starttls(context=endpoint.ssl_context())
            except (OSError, smtplib.SMTPException) as exc:
                raise self._unavailable(exc, "starttls") from exc
            self._ehlo()
        smtp.wait = endpoint.timeout

    def _unavailable(self, exc: Exception, stage: connect_failure.Stage) -> SmtpUnavailable:
        # smtplib turns a timeout or reset while reading a reply into SMTPServerDisconnected;
        # the socket's own error, which says more, is its context.
        cause = exc.__context__ if isinstance(exc.__context__, OSError) else exc
        reason = explain(cause, self.endpoint, stage, _tls_socket)
        log.warning("cannot connect to submission %s: %s", self.endpoint.address, reason)
        where = f"submission server {self.endpoint.address}"
        return SmtpUnavailable(f"{where}: {reason}", reason=reason)

    def _ehlo(self) -> None:
        code, message = self.smtp.ehlo()
        if code != 250:
            raise SmtpUnavailable(f"the submission server refused EHLO: {reply_of(code, message)}")

    def _command(self, command: str, arguments: str = "") -> Reply:
        return reply_of(*self.smtp.docmd(command, arguments))

    def authenticate(self, username: str, password: str) -> None:
        mechanisms = self.smtp.esmtp_features.get("auth", "").upper().split()
        if isinstance(password, AccessToken):
            reply = self._authenticate_oauth(mechanisms, username, password)
        elif "PLAIN" in mechanisms:
            token = sasl_plain(username, password).decode("ascii")
            reply = self._command("AUTH", f"PLAIN {token}")
        elif "LOGIN" in mechanisms:
            reply = self._command("AUTH", "LOGIN")
            for secret in (username, password):
                if reply.code == 334:
                    reply = self._command(_b64(secret))
        else:
            raise SmtpRefused("auth", None, "the submission server offers no password login")
        if reply.code != 235:
            if not reply.permanent:
                raise SmtpUnavailable(f"login temporarily refused: {reply}")
            raise SmtpRefused("auth", reply)

    def _authenticate_oauth(self, mechanisms: list[str], username: str, token: str) -> Reply:
        try:
            login = oauth_login(mechanisms, username, token, self.endpoint.host, self.endpoint.port)
        except ValueError:  # a control character: no server would take the token
            return Reply(535, "5.7.8 invalid token")
        if login is None:
            raise SmtpRefused("auth", None, "the submission server offers no OAuth login")
        reply = self._command("AUTH", f"{login.mechanism} {login.initial.decode('ascii')}")
        if reply.code == 334:
            # A refused token comes back as a challenge holding the error (RFC 7628 §3.2.2):
            # answered, the server gives its final refusal.
            reply = self._command(login.error_answer.decode("ascii"))
        return reply

    def send(self, mail_from: str, rcpt_to: list[str], message: _Message) -> Sent:
        options = self._mail_options(mail_from, rcpt_to, message)
        reply = self._command("MAIL", f"FROM:<{mail_from}>{''.join(' ' + o for o in options)}")
        if reply.code != 250:
            raise SmtpRefused("mail", reply, size_limit=self._size_limit())
        accepted: dict[str, Reply] = {}
        refused: dict[str, Reply] = {}
        for address in rcpt_to:
            reply = self._command("RCPT", f"TO:<{address}>")
            (accepted if reply.code in ACCEPTED_RCPT else refused)[address] = reply
        if refused:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._command("RSET")
            raise SmtpRefused("rcpt", None, "recipients refused", refused=refused)
        reply = self._command("DATA")
        if reply.code != 354:
            raise SmtpRefused("data", reply, size_limit=self._size_limit())
        self.handed_over = True
        for piece in message.dot_stuffed():
            self.smtp.send(piece)
        reply = reply_of(*self.smtp.getreply())
        if reply.code != 250:
            raise SmtpRefused("data", reply, size_limit=self._size_limit())
        return Sent(accepted, reply)

    def _mail_options(self, mail_from: str, rcpt_to: list[str], message: _Message) -> list[str]:
        smtp = self.smtp
        options: list[str] = []
        limit = self._size_limit()
        if limit is not None and message.size > limit:
            raise SmtpRefused("mail", None, "the message is too large", size_limit=limit)
        if smtp.has_extn("size"):
            options.append(f"SIZE={message.size}")
        if smtp.has_extn("8bitmime") and message.has_eight_bit():
            options.append("BODY=8BITMIME")
        if not all(address.isascii() for address in (mail_from, *rcpt_to)):
            if not smtp.has_extn("smtputf8"):
                refused = {a: _NEEDS_UTF8 for a in (mail_from, *rcpt_to) if not a.isascii()}
                stage: Stage = "mail" if not mail_from.isascii() else "rcpt"
                raise SmtpRefused(stage, _NEEDS_UTF8, str(_NEEDS_UTF8), refused=refused)
            options.append("SMTPUTF8")
            smtp.command_encoding = "utf-8"
        return options

    def _size_limit(self) -> int | None:
        """The SIZE the server advertised (RFC 1870), if it named one."""
        value = self.smtp.esmtp_features.get("size", "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    def close(self) -> None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            if self.smtp.sock is not None:
                self.smtp.quit()
        self.smtp.close()


class _Message:
    """The message to send, read from its file in pieces, never whole."""

    def __init__(self, handle: BinaryIO, chunk_size: int) -> None:
        self.handle = handle
        self.chunk_size = chunk_size
        self.size = handle.seek(0, io.SEEK_END)

    def chunks(self) -> Iterator[bytes]:
        self.handle.seek(0)
        while chunk := self.handle.read(self.chunk_size):
            yield chunk

    def has_eight_bit(self) -> bool:
        return any(_EIGHT_BIT.search(chunk) for chunk in self.chunks())

    def dot_stuffed(self) -> Iterator[bytes]:
        """DATA's content (RFC 5321 §4.5.2): a "." that starts a line doubled, whichever
        chunk the line starts in, then CRLF "." CRLF."""
        last = b"\n"  # the octet before the first: the message starts a line
        for chunk in self.chunks():
            stuffed = _DOT_AFTER_LF.sub(b"\n..", chunk)
            yield b"." + stuffed if last == b"\n" and chunk[:1] == b"." else stuffed
            last = chunk[-1:]
        yield b".\r\n" if last == b"\n" else b"\r\n.\r\n"


# A synthetic reply (RFC 8621 §7 allows them) for addresses this server cannot carry.
_NEEDS_UTF8 = Reply(553, "5.6.7 a non-ASCII address needs SMTPUTF8, which the server lacks")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")
