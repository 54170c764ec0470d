"""Opening an IMAP session: connect, TLS, authenticate, learn what the server offers.

imapclient (over imaplib) opens the socket, reads the greeting and does TLS, implicit or by
STARTTLS; from LOGIN on every command goes through ``wire.Wire``. Only the capabilities the
server advertises count: a server configured to hide CONDSTORE gets no ENABLE for it, even
if it would accept one.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
from dataclasses import dataclass

from imapclient import IMAPClient

from bridge import deadline
from bridge.endpoint import Endpoint, sasl_plain
from bridge.imap import quoting
from bridge.imap.errors import AuthFailed, DeadlinePassed, UpstreamUnavailable
from bridge.imap.responses import ObjectIds, parse_capabilities, parse_id
from bridge.imap.wire import Reply, Wire

log = logging.getLogger("bridge.imap")

# Response codes of a refused LOGIN that say "the server cannot", not "wrong password".
_UNAVAILABLE_CODES = {"UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT"}


# The IMAP server's address and TLS mode.
UpstreamConfig = Endpoint


@dataclass
class Session:
    """What opening established: the socket, the wire over it, and what the server offers."""

    client: IMAPClient
    wire: Wire
    greeting: bytes
    capabilities: frozenset[str]
    enabled: frozenset[str] = frozenset()
    object_ids: ObjectIds | None = None

    def set_capabilities(self, capabilities: frozenset[str]) -> None:
        self.capabilities = capabilities
        self.wire.literal_plus = "LITERAL+" in capabilities
        self.wire.literal_minus = "LITERAL-" in capabilities

    def record(self, *names: str) -> None:
        """Count commands imaplib sent on its own (CAPABILITY, STARTTLS)."""
        for name in names:
            self.wire.command_count += 1
            self.wire.commands.append(name)


class _ImaplibTransport:
    """The socket imaplib opened (and STARTTLS may have replaced): looked up on every call."""

    def __init__(self, imap: imaplib.IMAP4) -> None:
        self._imap = imap

    def send(self, data: bytes) -> None:
        self._imap.sock.sendall(data)

    def readline(self, limit: int) -> bytes:
        return self._imap.file.readline(limit)

    def read(self, size: int) -> bytes:
        return self._imap.file.read(size)

    def set_timeout(self, seconds: float) -> None:
        self._imap.sock.settimeout(seconds)

    def pending(self) -> bool:
        # imaplib reads through a buffered file: bytes may wait there while the socket
        # itself has nothing more. A non-blocking peek tells without waiting.
        sock = self._imap.sock
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            return bool(self._imap.file.peek(1))
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        finally:
            sock.settimeout(timeout)


def open_session(config: UpstreamConfig, username: str, password: str) -> Session:
    client = _connect(config)
    try:
        session = _greeted(client)
        session.wire.command_timeout = config.timeout
        if config.tls == "starttls":
            _starttls(session, config)
        _login(session, username, password)
        session.object_ids = _detect_object_ids(session)
        session.enabled = _enable(session)
    except BaseException:
        shutdown_quietly(client)
        raise
    log.debug("logged in to %s:%d as %s", config.host, config.port, username)
    return session


def shutdown_quietly(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):  # already closed is as good as closed
        client.shutdown()


def _connect(config: UpstreamConfig) -> IMAPClient:
    implicit = config.tls == "implicit"
    if deadline.expired():
        raise DeadlinePassed("not connecting: the request's time is up")
    try:
        client = IMAPClient(
            config.host,
            port=config.port,
            ssl=implicit,
            ssl_context=config.ssl_context() if implicit else None,
            timeout=deadline.bounded(config.timeout),  # the greeting and TLS too
        )
    except (OSError, imaplib.IMAP4.error) as exc:
        raise UpstreamUnavailable(
            f"cannot connect to {config.host}:{config.port}: {type(exc).__name__}"
        ) from exc
    # imaplib leaves Nagle on: every command with a literal would wait ~40 ms for an ACK.
    with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def _greeted(client: IMAPClient) -> Session:
    imap = client._imap
    if imap.state != "NONAUTH":
        # PREAUTH: the server would take any credentials bridge passed on as valid.
        raise UpstreamUnavailable("upstream pre-authenticated the connection; refusing it")
    session = Session(client, Wire(_ImaplibTransport(imap)), imap.welcome or b"", frozenset())
    session.set_capabilities(frozenset(c.upper() for c in imap.capabilities))
    # imaplib (3.11) always asks for CAPABILITY after the greeting.
    session.record(*["CAPABILITY"] * imap.tagnum)
    return session


def _starttls(session: Session, config: UpstreamConfig) -> None:
    if "STARTTLS" not in session.capabilities:
        raise UpstreamUnavailable("upstream does not offer STARTTLS")
    imap = session.client._imap
    try:
        typ, _ = imap.starttls(ssl_context=config.ssl_context())
    except (OSError, imaplib.IMAP4.error) as exc:
        raise UpstreamUnavailable(f"STARTTLS failed: {type(exc).__name__}") from exc
    session.record("STARTTLS", "CAPABILITY")
    if typ != "OK":
        raise UpstreamUnavailable("STARTTLS refused")
    session.client._starttls_done = True
    session.client.socket().settimeout(config.timeout)
    # What the server said before TLS could have been forged: only what follows counts.
    session.set_capabilities(frozenset(c.upper() for c in imap.capabilities))


def _login(session: Session, username: str, password: str) -> None:
    try:
        if "LOGINDISABLED" in session.capabilities:
            reply = _authenticate_plain(session, username, password)
        else:
            login = b"LOGIN " + quoting.astring(username) + b" " + quoting.astring(password)
            reply = session.wire.run(login)
    except ValueError as exc:  # NUL in a credential: no server could accept it
        raise AuthFailed() from exc
    if reply.status != "OK":
        if reply.code in _UNAVAILABLE_CODES:
            raise UpstreamUnavailable(f"login refused for now [{reply.code}]")
        log.info("login failed for %s [%s]", username, reply.code or reply.status)
        raise AuthFailed(reply.code)
    _take_capabilities(session, reply)


def _authenticate_plain(session: Session, username: str, password: str) -> Reply:
    if "AUTH=PLAIN" not in session.capabilities:
        raise UpstreamUnavailable("upstream disables LOGIN and offers no AUTH=PLAIN")
    token = sasl_plain(username, password)
    if "SASL-IR" in session.capabilities:
        return session.wire.run(b"AUTHENTICATE PLAIN " + token)
    answers = iter([token])
    # A second challenge means the server wants something PLAIN cannot give: cancel.
    return session.wire.run(b"AUTHENTICATE PLAIN", responder=lambda _: next(answers, b"*"))


def _take_capabilities(session: Session, reply: Reply) -> None:
    """The capabilities after login: from the LOGIN reply if it has them, else asked for."""
    found = [args for code, args in reply.codes() if code == "CAPABILITY" and args]
    found += [u.text for u in reply.of("CAPABILITY")]
    if not found:
        found = [u.text for u in session.wire.run(b"CAPABILITY").check().of("CAPABILITY")]
    session.set_capabilities(parse_capabilities(b" ".join(found)))


def _detect_object_ids(session: Session) -> ObjectIds | None:
    if "OBJECTID" in session.capabilities:
        return ObjectIds.OBJECTID
    if "X-GM-EXT-1" in session.capabilities:
        return ObjectIds.GMAIL
    if b"dovecot" in session.greeting.lower():
        return ObjectIds.DOVECOT
    if "ID" in session.capabilities:
        # A greeting can be customised; Dovecot's ID answer names it unless disabled.
        reply = session.wire.run(b'ID ("name" "bridge")')
        if reply.status == "OK":
            for response in reply.of("ID"):
                if parse_id(response).get("name", "").lower() == "dovecot":
                    return ObjectIds.DOVECOT
    return None


def _enable(session: Session) -> frozenset[str]:
    wanted = next((c for c in ("QRESYNC", "CONDSTORE") if c in session.capabilities), None)
    if wanted is None or "ENABLE" not in session.capabilities:
        return frozenset()
    reply = session.wire.run(b"ENABLE " + wanted.encode("ascii"))
    if reply.status != "OK":
        # Work on without: QRESYNC methods refuse, CONDSTORE is switched on per SELECT.
        log.warning("upstream refused ENABLE %s [%s]", wanted, reply.code or reply.status)
        return frozenset()
    enabled = {w.upper() for u in reply.of("ENABLED") for w in u.text.decode().split()}
    if "QRESYNC" in enabled:
        enabled.add("CONDSTORE")  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
    return frozenset(enabled)
