"""Opening an IMAP session: connect, TLS, authenticate, learn what the server offers.

imapclient (over imaplib) opens the socket, reads the greeting and does TLS, implicit or by
STARTTLS; from LOGIN on every command goes through ``wire.Wire``. Only the capabilities the
server advertises count: a server configured to hide CONDSTORE gets no ENABLE for it, even
if it would accept one.
"""

from __future__ import annotations

import contextlib
import imaplib
import io
import logging
import re
import socket
import ssl
from dataclasses import dataclass, replace
from typing import Any

from imapclient import IMAPClient, SocketTimeout

from bridge import deadline, metrics
from bridge.connect_failure import explain
from bridge.endpoint import AccessToken, Endpoint, connect, oauth_login, sasl_plain
from bridge.imap import quoting
from bridge.imap.errors import AuthFailed, DeadlinePassed, UpstreamUnavailable
from bridge.imap.refusals import REFUSED
from bridge.imap.responses import ObjectIds, parse_capabilities, parse_id
from bridge.imap.wire import Reply, Wire

log = logging.getLogger("bridge.imap")

# How imaplib shows a line it did not take: "unexpected response: b'220 ...'".
_QUOTED_BYTES = re.compile(r"""b(['"])(.*?)\1?$""")
# Response codes of a refused LOGIN that say "the server cannot", not "wrong password".
_UNAVAILABLE_CODES = {"UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT"}
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


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
    try:
        session = connect_session(config)
    except BaseException:
        metrics.IMAP_CONNECTS.labels("failed").inc()
        raise
    try:
        log_in(session, username, password, refused=REFUSED.of(config.host, config.port))
    except BaseException as exc:
        shutdown_quietly(session.client)
        metrics.IMAP_CONNECTS.labels("refused" if isinstance(exc, AuthFailed) else "failed").inc()
        raise
    metrics.IMAP_CONNECTS.labels("ok").inc()
    log.debug("logged in to %s:%d as %s", config.host, config.port, username)
    return session


def connect_session(config: UpstreamConfig) -> Session:
    """Connected, greeted and with TLS as configured; not yet logged in. Inside a request
    the connect, TLS and greeting wait no longer than the time left (bridge.deadline)."""
    if deadline.expired():
        raise DeadlinePassed("not connecting: the request's time is up")
    config = replace(config, connect_timeout=deadline.bounded(config.connect_timeout))
    client = _connect(config)
    try:
        session = _greeted(client)
        session.wire.command_timeout = config.timeout
        if config.tls == "starttls":
            _starttls(session, config)
    except BaseException:
        shutdown_quietly(client)
        raise
    return session


def log_in(
    session: Session, username: str, password: str, *, refused: frozenset[str] = frozenset()
) -> None:
    """Authenticate, then learn the server's object ids and ENABLE what it offers.
    ``refused``: extensions this upstream advertised and refused before, as good as not
    advertised (see ``bridge.imap.refusals``)."""
    _login(session, username, password)
    session.set_capabilities(session.capabilities - refused)
    session.object_ids = _detect_object_ids(session, refused)
    session.enabled = _enable(session)


def shutdown_quietly(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):  # already closed is as good as closed
        client.shutdown()


class _Imap4(imaplib.IMAP4):
    """imaplib over a socket from ``endpoint.connect`` (TCP, TLS if implicit, NODELAY)."""

    def __init__(self, config: UpstreamConfig) -> None:
        self._endpoint = config
        super().__init__(config.host, config.port, timeout=config.connect_timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return connect(self._endpoint)

    def _get_capabilities(self) -> None:
        """The greeting's CAPABILITY response code where it has one (RFC 3501 §7.1; Dovecot
        sends it) instead of the CAPABILITY command imaplib sends after every greeting:
        a round trip less for each new connection. Never after STARTTLS: what came before
        TLS could have been forged, so the command is sent then."""
        greeted = self.untagged_responses.pop("CAPABILITY", None)
        if greeted and greeted[-1] and not self._tls_established:
            self.capabilities = tuple(str(greeted[-1], self._encoding).upper().split())
            return
        super()._get_capabilities()


class _Client(IMAPClient):
    def __init__(self, config: UpstreamConfig) -> None:
        self._endpoint = config
        super().__init__(
            config.host,
            port=config.port,
            ssl=config.tls == "implicit",
            # The greeting is read within the connect timeout, commands within the other.
            timeout=SocketTimeout(config.connect_timeout, config.timeout),
        )

    def _create_IMAP4(self) -> imaplib.IMAP4:
        return _Imap4(self._endpoint)


def _connect(config: UpstreamConfig) -> IMAPClient:
    try:
        client = _Client(config)
    except (OSError, EOFError, imaplib.IMAP4.error) as exc:
        # ConnectFailed (connect, TLS) is explained already; the rest met the greeting.
        if isinstance(exc, imaplib.IMAP4.error):
            reason = _greeting_refused(exc)
        else:
            reason = explain(exc, config, "greeting")
        log.warning("cannot connect to IMAP %s: %s", config.address, reason)
        raise UpstreamUnavailable(f"{config.address}: {reason}", reason=reason) from exc
    _ack_at_once(client._imap)
    return client


def _greeting_refused(exc: imaplib.IMAP4.error) -> str:
    """imaplib's words for a greeting it did not take, as a reason."""
    text = str(exc)
    if text == "socket error: EOF":
        return "connection closed before the greeting"
    quoted = _QUOTED_BYTES.search(text)  # imaplib shows the line as a bytes repr
    return f"not an IMAP greeting: {(quoted.group(2) if quoted else text)[:100]}"


class _QuickAckIO(socket.SocketIO):
    """Socket reads that acknowledge what they receive at once (Linux's TCP_QUICKACK, which
    the kernel drops again after a while: so set before every read).

    A server that writes a response in pieces with Nagle's algorithm on (GNU imap4d: the
    untagged lines, then the tagged one) holds its second piece until the first is
    acknowledged, and a delayed ACK takes 40 ms: every command cost 44 ms there, 0.2 ms
    with this."""

    def readinto(self, buffer: Any) -> int | None:
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        return super().readinto(buffer)


def _ack_at_once(imap: imaplib.IMAP4) -> None:
    """Read the session through ``_QuickAckIO`` (again after STARTTLS replaced the socket)."""
    if QUICKACK is None or _ImaplibTransport(imap).pending():
        return  # not Linux; or bytes already buffered, which a new reader would lose
    old = imap.file
    imap.file = io.BufferedReader(_QuickAckIO(imap.sock, "rb"))
    old.close()


def _greeted(client: IMAPClient) -> Session:
    imap = client._imap
    if imap.state != "NONAUTH":
        # PREAUTH: the server would take any credentials bridge passed on as valid.
        raise UpstreamUnavailable("upstream pre-authenticated the connection; refusing it")
    session = Session(client, Wire(_ImaplibTransport(imap)), imap.welcome or b"", frozenset())
    session.set_capabilities(frozenset(c.upper() for c in imap.capabilities))
    # The CAPABILITY imaplib sent after the greeting, unless the greeting had them.
    session.record(*["CAPABILITY"] * imap.tagnum)
    return session


def _starttls(session: Session, config: UpstreamConfig) -> None:
    if "STARTTLS" not in session.capabilities:
        raise UpstreamUnavailable("upstream does not offer STARTTLS")
    imap = session.client._imap
    try:
        imap.sock.settimeout(config.connect_timeout)
        typ, _ = imap.starttls(ssl_context=config.ssl_context())
    except (OSError, imaplib.IMAP4.error) as exc:
        reason = explain(exc, config, "starttls", _tls_socket)
        log.warning("STARTTLS to IMAP %s failed: %s", config.address, reason)
        raise UpstreamUnavailable(f"STARTTLS failed: {reason}", reason=reason) from exc
    session.record("STARTTLS", "CAPABILITY")
    if typ != "OK":
        raise UpstreamUnavailable("STARTTLS refused")
    session.client._starttls_done = True
    session.client.socket().settimeout(config.timeout)
    _ack_at_once(imap)
    # What the server said before TLS could have been forged: only what follows counts.
    session.set_capabilities(frozenset(c.upper() for c in imap.capabilities))


def _tls_socket(config: UpstreamConfig) -> socket.socket:
    return connect_session(config).client.socket()


def _login(session: Session, username: str, password: str) -> None:
    try:
        if isinstance(password, AccessToken):
            reply = _authenticate_oauth(session, username, password)
        elif "LOGINDISABLED" in session.capabilities:
            reply = _authenticate_plain(session, username, password)
        else:
            login = b"LOGIN " + quoting.astring(username) + b" " + quoting.astring(password)
            reply = session.wire.run(login)
    except ValueError as exc:  # NUL (or, in a token, any control) character: refused anyway
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


def _authenticate_oauth(session: Session, username: str, token: AccessToken) -> Reply:
    offered = [c.removeprefix("AUTH=") for c in session.capabilities if c.startswith("AUTH=")]
    login = oauth_login(offered, username, token, session.client.host, session.client.port)
    if login is None:
        raise UpstreamUnavailable("upstream offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2")
    # A refused token comes back as a challenge holding the error: answered, the server says NO.
    command = b"AUTHENTICATE " + login.mechanism.encode("ascii")
    if "SASL-IR" in session.capabilities:
        return session.wire.run(command + b" " + login.initial,
                                responder=lambda _: login.error_answer)  # fmt: skip
    answers = iter([login.initial])
    return session.wire.run(command, responder=lambda _: next(answers, login.error_answer))


def _take_capabilities(session: Session, reply: Reply) -> None:
    """The capabilities after login: from the LOGIN reply if it has them, else asked for."""
    found = [args for code, args in reply.codes() if code == "CAPABILITY" and args]
    found += [u.text for u in reply.of("CAPABILITY")]
    if not found:
        found = [u.text for u in session.wire.run(b"CAPABILITY").check().of("CAPABILITY")]
    session.set_capabilities(parse_capabilities(b" ".join(found)))


def _detect_object_ids(session: Session, refused: frozenset[str]) -> ObjectIds | None:
    if "OBJECTID" in session.capabilities:
        return ObjectIds.OBJECTID
    if "X-GM-EXT-1" in session.capabilities:
        return ObjectIds.GMAIL
    if ObjectIds.DOVECOT.extension in refused:
        return None
    if dovecot_greeting(session.greeting):
        return ObjectIds.DOVECOT
    if "ID" in session.capabilities:
        # A greeting can be customised; Dovecot's ID answer names it unless disabled.
        reply = session.wire.run(b'ID ("name" "bridge")')
        if reply.status == "OK":
            for response in reply.of("ID"):
                if parse_id(response).get("name", "").lower() == "dovecot":
                    return ObjectIds.DOVECOT
    return None


def dovecot_greeting(greeting: bytes) -> bool:
    return b"dovecot" in greeting.lower()


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
