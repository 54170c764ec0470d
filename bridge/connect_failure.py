"""Why a connection to an upstream service failed, in a few words an operator can act on.

``explain`` is the one function that turns the OSError or ssl error of a connect, a TLS
handshake or a greeting into a short reason ("connection refused", "certificate verify
failed: self-signed certificate", "no greeting within 10 s: ..."); the IMAP, SMTP and
ManageSieve clients put it in their exceptions and the log. A reason never holds a
credential: only the host, the port, timeouts and what the certificate says.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from bridge.certificates import expiry, load_der, names

if TYPE_CHECKING:
    from cryptography import x509

    from bridge.endpoint import Endpoint

# Where the failure happened: TCP connect, implicit TLS handshake, reading the greeting (or
# the first answers after it), or the handshake after STARTTLS.
Stage = Literal["connect", "tls", "greeting", "starttls"]
# Opens a protocol's connection to an endpoint up to TLS, and returns its socket.
Reopen = Callable[["Endpoint"], socket.socket]

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) that deserve more than OpenSSL's own words.
_EXPIRED = 10
_SELF_SIGNED = (18, 19)
_UNKNOWN_ISSUER = (20, 21)
_NAME_MISMATCH = (62, 64)  # hostname, IP address


class ConnectFailed(OSError):
    """No usable connection; ``reason`` (also ``str()``) says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def explain(
    exc: BaseException, endpoint: Endpoint, stage: Stage, reopen: Reopen | None = None
) -> str:
    """A short reason for ``exc``, raised while at ``stage`` of reaching ``endpoint``.

    A failed handshake leaves no certificate to read: for an expired or misnamed one,
    ``reopen`` (the protocol's own way to a TLS socket, given an endpoint that does not
    verify) takes a second look, only to read what the certificate says."""
    if isinstance(exc, ConnectFailed):
        return exc.reason
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _certificate_reason(exc, endpoint, reopen)
    if isinstance(exc, TimeoutError):
        return _timeout_reason(endpoint, stage)
    if isinstance(exc, socket.gaierror):
        return f"name does not resolve: {endpoint.host}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return _tls_reason(exc, endpoint)
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError):
        where = "during the TLS handshake" if stage in ("tls", "starttls") else "by the server"
        return f"connection closed {where}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return (exc.strerror or errno.errorcode.get(exc.errno, str(exc.errno))).lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _timeout_reason(endpoint: Endpoint, stage: Stage) -> str:
    seconds = f"{endpoint.connect_timeout:g} s"
    if stage == "connect":
        return f"connect timed out after {seconds}"
    if stage == "greeting" and endpoint.tls != "implicit":
        # An implicit-TLS server waits for the client's hello and says nothing itself.
        return (
            f"no greeting within {seconds}: is this an implicit-TLS port? "
            f"try --{endpoint.setting}-tls implicit"
        )
    if stage in ("tls", "starttls"):
        return f"TLS handshake timed out after {seconds}: the server sent nothing"
    return f"timed out after {seconds}"


def _tls_reason(exc: ssl.SSLError, endpoint: Endpoint) -> str:
    code = exc.reason or ""
    if code == "WRONG_VERSION_NUMBER" or code == "RECORD_LAYER_FAILURE":
        # What came back was not a TLS record: a plaintext greeting ("* OK", "220 ...").
        return f"no TLS on this port (plaintext greeting): try --{endpoint.setting}-tls starttls"
    if code in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"):
        return "no TLS version in common with the server"
    if code == "SSLV3_ALERT_HANDSHAKE_FAILURE":
        return "TLS handshake failure: no cipher in common?"
    if isinstance(exc, ssl.SSLEOFError) or code == "UNEXPECTED_EOF_WHILE_READING":
        return "connection closed during the TLS handshake"
    return f"TLS failed: {code.lower().replace('_', ' ') if code else exc}"


def _certificate_reason(
    exc: ssl.SSLCertVerificationError, endpoint: Endpoint, reopen: Reopen | None
) -> str:
    code = exc.verify_code
    flag = f"--{endpoint.setting}-ca-file"
    if code in _SELF_SIGNED:
        return f"certificate verify failed: {exc.verify_message} (trust it with {flag})"
    if code in _UNKNOWN_ISSUER:
        return f"certificate verify failed: {exc.verify_message} (unknown CA: {flag})"
    certificate = _peer_certificate(endpoint, reopen) if reopen else None
    if code == _EXPIRED:
        if certificate is None:
            return "certificate has expired"
        return f"certificate has expired (on {expiry(certificate)})"
    if code in _NAME_MISMATCH:
        if certificate is None:
            return f"hostname mismatch: the certificate is not valid for {endpoint.host}"
        listed = ", ".join(names(certificate))
        return f"hostname mismatch: expected {endpoint.host}, the certificate is for {listed}"
    return f"certificate verify failed: {exc.verify_message}"


def _peer_certificate(endpoint: Endpoint, reopen: Reopen) -> x509.Certificate | None:
    with contextlib.suppress(Exception):  # no second look: the reason says less
        with reopen(replace(endpoint, verify_tls=False)) as sock:
            der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        return load_der(der) if der else None
    return None
