"""Where an upstream service listens and how to reach it: the IMAP server, SMTP submission
and ManageSieve all take one of these, and open their sockets through ``connect``.

Two timeouts: ``connect_timeout`` covers the TCP connect, the TLS handshake and the
server's greeting, so that a wrong port (STARTTLS against an implicit-TLS port, where the
server waits for a ClientHello and says nothing) fails in seconds; ``timeout`` covers each
command after that. Every failure on the way in carries a short reason
(``connect_failure.ConnectFailed``).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from bridge.connect_failure import ConnectFailed, Reopen, Stage, explain

TlsMode = Literal["implicit", "starttls", "plain"]


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: TlsMode = "implicit"
    timeout: float = 30.0
    verify_tls: bool = True
    # PEM file of the CAs to trust instead of the system's (a private CA, a self-signed
    # certificate); None trusts the system's store (and SSL_CERT_FILE).
    ca_file: str | None = None
    connect_timeout: float = 10.0
    # The prefix of this service's settings ("upstream", "submission", "sieve"): failure
    # reasons name the flag that would fix them.
    setting: str = "upstream"

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS client context for IMAP, SMTP and ManageSieve: built once per CA file
        (and version of it) and shared, since loading the system's CAs costs milliseconds,
        which every new upstream connection would pay again."""
        return _client_context(self.ca_file, self.verify_tls, _version(self.ca_file))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _version(path: str | None) -> tuple[int, int] | None:
    """What tells a replaced CA file from the one a context was built with."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None  # the build reports the file missing
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _client_context(
    ca_file: str | None, verify: bool, version: tuple[int, int] | None
) -> ssl.SSLContext:
    """The one place a TLS client context is built (a failure is not cached)."""
    try:
        context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ValueError) as exc:
        raise ConnectFailed(f"cannot load CA file {ca_file}: {exc}") from exc
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(endpoint: Endpoint) -> socket.socket:
    """A TCP socket to ``endpoint`` (TLS already negotiated for implicit TLS), with
    TCP_NODELAY and ``connect_timeout`` in force for reading the greeting: the caller sets
    ``endpoint.timeout`` once greeted. ConnectFailed with the reason."""
    try:
        sock = socket.create_connection(
            (endpoint.host, endpoint.port), timeout=endpoint.connect_timeout
        )
    except OSError as exc:
        raise ConnectFailed(explain(exc, endpoint, "connect")) from exc
    # Nagle would hold every command that carries a literal ~40 ms for the server's ACK.
    with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if endpoint.tls != "implicit":
        return sock
    return start_tls(sock, endpoint, "tls", connect)


def start_tls(
    sock: socket.socket, endpoint: Endpoint, stage: Stage = "starttls", reopen: Reopen | None = None
) -> ssl.SSLSocket:
    """The TLS handshake over ``sock`` (closed on failure), within ``connect_timeout``;
    ``reopen`` as ``connect_failure.explain`` takes it."""
    try:
        context = endpoint.ssl_context()
        sock.settimeout(endpoint.connect_timeout)
        return context.wrap_socket(sock, server_hostname=endpoint.host)
    except OSError as exc:
        sock.close()
        raise ConnectFailed(explain(exc, endpoint, stage, reopen)) from exc


def sasl_plain(username: str, password: str) -> bytes:
    """The base64 SASL PLAIN message (RFC 4616) that IMAP, SMTP and ManageSieve log in with;
    UnicodeEncodeError for a credential no server could take (a lone surrogate)."""
    return base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode())


class AccessToken(str):
    """An OAuth 2.0 access token standing where a password would: a login with one
    authenticates by SASL OAUTHBEARER (RFC 7628) or XOAUTH2, never PLAIN or LOGIN. It is
    a ``str`` so that everything carrying a user's secret (the pool, watchers, indexers)
    carries it unchanged; only the three logins look at which kind it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "AccessToken(<hidden>)"


# In order of preference: the standard one first; XOAUTH2 is Google's and Microsoft's older
# spelling of the same thing (and the only one Outlook offers).
OAUTH_MECHANISMS = ("OAUTHBEARER", "XOAUTH2")


@dataclass(frozen=True)
class OAuthLogin:
    """How to present an access token to one server, as IMAP, SMTP and ManageSieve do."""

    mechanism: str
    initial: bytes = field(repr=False)  # the base64 initial response
    # What the client sends (base64) when the server answers the initial response with an
    # error challenge (a JSON status) instead of a result: the server then fails the
    # exchange. OAUTHBEARER wants a lone %x01 (RFC 7628 §3.2.3), XOAUTH2 an empty line.
    error_answer: bytes


def oauth_login(
    offered: Iterable[str], username: str, token: str, host: str, port: int
) -> OAuthLogin | None:
    """The login with ``token`` by the best mechanism of those offered; None if the server
    offers neither. ValueError for a credential that would break the message apart (a
    control character), UnicodeEncodeError for a lone surrogate."""
    names = {name.upper() for name in offered}
    mechanism = next((name for name in OAUTH_MECHANISMS if name in names), None)
    if mechanism is None:
        return None
    answer = base64.b64encode(b"\x01") if mechanism == "OAUTHBEARER" else b""
    return OAuthLogin(mechanism, sasl_oauth(mechanism, username, token, host, port), answer)


def sasl_oauth(mechanism: str, username: str, token: str, host: str, port: int) -> bytes:
    """The base64 initial response of OAUTHBEARER (RFC 7628 §3.1) or XOAUTH2."""
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in username + token):
        raise ValueError("control character in an OAuth credential")
    bearer = f"auth=Bearer {token}\x01\x01"
    if mechanism == "XOAUTH2":
        message = f"user={username}\x01{bearer}"
    elif mechanism == "OAUTHBEARER":
        # The authzid is a saslname: "=" and "," are escaped (RFC 5801 §5.1).
        authzid = username.replace("=", "=3D").replace(",", "=2C")
        message = f"n,a={authzid},\x01host={host}\x01port={port}\x01{bearer}"
    else:
        raise ValueError(f"not an OAuth SASL mechanism: {mechanism}")
    return base64.b64encode(message.encode())
