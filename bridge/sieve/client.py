"""A synchronous ManageSieve client (RFC 5804): one logged-in session per use.

``ManageSieve.open`` connects (implicit TLS, STARTTLS or plain, as configured), reads the
capabilities, and authenticates with SASL PLAIN as the user (OAUTHBEARER or XOAUTH2 with
an OAuth access token). Each command is one method;
a NO raises ``SieveCommandFailed`` with the response code (``QUOTA/MAXSIZE``,
``NONEXISTENT``, ``ACTIVE``, ...); anything that leaves the session unusable (timeout,
BYE, an unreadable response) closes it and raises ``SieveUnavailable``. Every argument
goes through ``protocol.string``. Commands are logged by name only, never with their
arguments or the credentials.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NoReturn, TypeVar

from bridge import deadline
from bridge.connect_failure import ConnectFailed, explain
from bridge.endpoint import AccessToken, Endpoint, connect, oauth_login, sasl_plain, start_tls
from bridge.sieve import protocol
from bridge.sieve.errors import SieveAuthFailed, SieveCommandFailed, SieveUnavailable
from bridge.sieve.protocol import Atom, ProtocolError, Response

log = logging.getLogger("bridge.sieve")
T = TypeVar("T")

RECV_SIZE = 64 * 1024
LOGOUT_TIMEOUT = 5.0


# The ManageSieve server's address and TLS mode.
SieveConfig = Endpoint


@dataclass(frozen=True)
class Script:
    name: str
    active: bool


class _SocketSource:
    """Buffered reads from the socket, with a look at what is buffered (see STARTTLS)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def _fill(self) -> bool:
        chunk = self._sock.recv(RECV_SIZE)
        self._buffer += chunk
        return bool(chunk)

    def readline(self, limit: int) -> bytes:
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0 or len(self._buffer) >= limit:
                size = min(limit, end + 1 if end >= 0 else len(self._buffer))
                break
            start = len(self._buffer)
            if not self._fill():
                size = len(self._buffer)
                break
        line = bytes(self._buffer[:size])
        del self._buffer[:size]
        return line

    def read(self, size: int) -> bytes:
        if not self._buffer and not self._fill():
            return b""
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    @property
    def pending(self) -> int:
        return len(self._buffer)


class ManageSieve:
    """One authenticated session. Not thread-safe; use it from one thread, then close."""

    def __init__(self, sock: socket.socket, config: SieveConfig) -> None:
        self._sock = sock
        self._source = _SocketSource(sock)
        self._config = config
        # How long one response may take, and never past the request's deadline: each
        # command sets it as the socket's read timeout (bridge.deadline).
        self._wait = config.timeout
        self.capabilities: dict[str, str] = {}
        self.closed = False

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, config: SieveConfig, username: str, password: str) -> ManageSieve:
        """Connect, TLS as configured, authenticate. SieveAuthFailed if the credentials
        are refused, SieveUnavailable for anything else."""
        session = cls.connect(config)
        try:
            session.authenticate(username, password)
        except BaseException:
            session.close()
            raise
        log.debug("ManageSieve session open for %s", username)
        return session

    @classmethod
    def connect(cls, config: SieveConfig) -> ManageSieve:
        """Connected, greeted, TLS as configured: the capabilities are known, nobody is
        logged in yet. SieveUnavailable when that fails."""
        session = cls(_connect(config), config)
        try:
            session._greeting()
            if config.tls == "starttls":
                session._starttls()
        except BaseException:
            session.close()
            raise
        return session

    def _greeting(self) -> None:
        try:
            greeting = protocol.read_response(self._source)
        except (OSError, ProtocolError) as exc:
            self.close()
            if isinstance(exc, ProtocolError):
                reason = f"not a ManageSieve greeting: {exc}"
            else:
                reason = explain(exc, self._config, "greeting")
            log.warning("no ManageSieve greeting from %s: %s", self._config.address, reason)
            raise SieveUnavailable(f"{self._config.address}: {reason}", reason=reason) from exc
        if self._config.tls != "starttls":
            self._sock.settimeout(self._config.timeout)
        if greeting.status != "OK":
            raise SieveUnavailable(f"ManageSieve server refused the connection ({greeting.code})")
        self.capabilities = protocol.capabilities(greeting.lines)

    def _starttls(self) -> None:
        if "STARTTLS" not in self.capabilities:
            raise SieveUnavailable("ManageSieve server does not offer STARTTLS")
        if self._run("STARTTLS").status != "OK":
            raise SieveUnavailable("ManageSieve server refused STARTTLS")
        # Anything already buffered was sent in the clear after the OK: an injection.
        if self._source.pending:
            raise SieveUnavailable("ManageSieve server sent data before the TLS handshake")
        try:
            self._sock = start_tls(self._sock, _within_deadline(self._config), reopen=_tls_socket)
        except ConnectFailed as exc:
            self.close()
            log.warning("STARTTLS to ManageSieve %s failed: %s", self._config.address, exc)
            raise SieveUnavailable(f"STARTTLS failed: {exc.reason}", reason=exc.reason) from exc
        self._source = _SocketSource(self._sock)
        # §2.2: the server says its capabilities again; only these count.
        self.capabilities = protocol.capabilities(self._read().lines)
        self._sock.settimeout(self._config.timeout)

    def authenticate(self, username: str, password: str) -> None:
        mechanisms = self.capabilities.get("SASL", "").upper().split()
        if "\0" in username + password:  # it would split the SASL message elsewhere
            raise SieveAuthFailed()
        try:
            if isinstance(password, AccessToken):
                host, port = self._config.host, self._config.port
                login = oauth_login(mechanisms, username, password, host, port)
                if login is None:
                    raise SieveUnavailable("ManageSieve server offers no OAUTHBEARER or XOAUTH2")
                mechanism, initial = login.mechanism, login.initial
                # A refused token comes back as a challenge holding the error: answered,
                # the server says NO.
                answer = protocol.string(login.error_answer) + b"\r\n"
            elif "PLAIN" in mechanisms:
                mechanism, initial = "PLAIN", sasl_plain(username, password)
                # A challenge after an initial response: PLAIN has nothing more to say (§2.1).
                answer = b'"*"\r\n'
            else:
                raise SieveUnavailable("ManageSieve server offers no SASL PLAIN")
            line = protocol.command(
                "AUTHENTICATE", protocol.string(mechanism), protocol.string(initial)
            )
        except ValueError as exc:  # a lone surrogate or a control character in a token
            raise SieveAuthFailed() from exc
        self._send("AUTHENTICATE", line)
        while True:
            tokens = self._io(protocol.read_line)
            response = protocol.status_of(tokens)
            if response is not None:
                break
            self._send("AUTHENTICATE", answer)
        if response.status == "BYE":
            self._fail(f"ManageSieve server said BYE to AUTHENTICATE ({response.code})")
        if response.status != "OK":
            if response.code == "TRYLATER":
                raise SieveUnavailable("ManageSieve server asks to try later")
            log.info("ManageSieve login failed for %s (%s)", username, response.code or "NO")
            raise SieveAuthFailed(response.code)

    # -- commands ---------------------------------------------------------------------------

    @property
    def socket(self) -> socket.socket:
        """The connection (an SSLSocket once TLS is on), for a look at its TLS."""
        return self._sock

    @property
    def extensions(self) -> frozenset[str]:
        """The Sieve extensions the server supports (its SIEVE capability)."""
        return frozenset(self.capabilities.get("SIEVE", "").lower().split())

    def list_scripts(self) -> list[Script]:
        scripts = []
        for tokens in self._checked("LISTSCRIPTS").lines:
            if not tokens or isinstance(tokens[0], Atom | list):
                self._fail("ManageSieve server sent an unreadable LISTSCRIPTS line")
            active = len(tokens) > 1 and isinstance(tokens[1], Atom) and tokens[1] == "ACTIVE"
            scripts.append(Script(str(tokens[0]), active))
        return scripts

    def get_script(self, name: str) -> str:
        lines = self._checked("GETSCRIPT", protocol.string(name)).lines
        if len(lines) != 1 or len(lines[0]) != 1 or not isinstance(lines[0][0], str):
            self._fail("ManageSieve server sent an unreadable GETSCRIPT response")
        return str(lines[0][0])

    def put_script(self, name: str, content: str) -> Response:
        """Store (and compile) a script; an active one is replaced at once. The response
        may carry ``WARNINGS`` with the compiler's text."""
        return self._checked("PUTSCRIPT", protocol.string(name), protocol.string(content))

    def have_space(self, name: str, size: int) -> None:
        """SieveCommandFailed (code QUOTA, QUOTA/MAXSIZE, ...) unless it would fit."""
        self._checked("HAVESPACE", protocol.string(name), protocol.number(size))

    def set_active(self, name: str | None) -> None:
        """Activate ``name``, or (None) leave no script active."""
        self._checked("SETACTIVE", protocol.string(name or ""))

    def delete_script(self, name: str) -> None:
        self._checked("DELETESCRIPT", protocol.string(name))

    def noop(self) -> None:
        self._checked("NOOP")

    def logout(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(SieveUnavailable, OSError):
            self._wait = min(self._config.timeout, LOGOUT_TIMEOUT)
            self._run("LOGOUT")
        self.close()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> ManageSieve:
        return self

    def __exit__(self, *exc: object) -> None:
        self.logout()

    # -- plumbing ---------------------------------------------------------------------------

    def _checked(self, name: str, *args: bytes) -> Response:
        response = self._run(name, *args)
        if response.status != "OK":
            raise SieveCommandFailed(name, response.code, response.text)
        return response

    def _run(self, name: str, *args: bytes) -> Response:
        self._send(name, protocol.command(name, *args))
        response = self._read()
        if response.status == "BYE" and name != "LOGOUT":
            self._fail(f"ManageSieve server said BYE to {name} ({response.code})")
        return response

    def _send(self, name: str, line: bytes) -> None:
        if self.closed:
            raise SieveUnavailable("the ManageSieve session is closed")
        if deadline.expired():
            self._fail(f"{name} not sent: the request's time is up")
        try:
            self._sock.settimeout(deadline.bounded(self._wait))
            self._sock.sendall(line)
        except OSError as exc:
            self._fail(f"ManageSieve connection lost: {type(exc).__name__}", exc)

    def _read(self) -> Response:
        return self._io(protocol.read_response)

    def _io(self, reader: Callable[[protocol.Source], T]) -> T:
        try:
            return reader(self._source)
        except (OSError, ProtocolError) as exc:
            self._fail(f"ManageSieve connection lost: {type(exc).__name__}", exc)

    def _fail(self, reason: str, cause: BaseException | None = None) -> NoReturn:
        self.close()
        raise SieveUnavailable(reason) from cause


def _within_deadline(config: SieveConfig) -> SieveConfig:
    """``config`` with the connect, TLS and greeting wait cut to the request's time left."""
    if deadline.expired():
        raise SieveUnavailable("not connecting: the request's time is up")
    return replace(config, connect_timeout=deadline.bounded(config.connect_timeout))


def _connect(config: SieveConfig) -> socket.socket:
    try:
        return connect(_within_deadline(config))
    except ConnectFailed as exc:
        log.warning("cannot connect to ManageSieve %s: %s", config.address, exc.reason)
        raise SieveUnavailable(f"{config.address}: {exc.reason}", reason=exc.reason) from exc


def _tls_socket(config: SieveConfig) -> socket.socket:
    return ManageSieve.connect(config).socket
