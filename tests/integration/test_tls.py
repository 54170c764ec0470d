"""Each way a connection to the upstream can fail says why, in the exception and the log.

Real servers: Dovecot with TLS (a self-signed certificate for 127.0.0.1, and one that has
expired), and plain Python sockets for a server that accepts and never speaks.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, load_settings
from bridge.demo.dovecot import Dovecot, free_port
from bridge.endpoint import Endpoint, TlsMode
from bridge.imap.connection import ImapConnection
from bridge.imap.errors import UpstreamUnavailable
from bridge.sieve.client import ManageSieve
from bridge.sieve.errors import SieveAuthFailed, SieveUnavailable
from bridge.smtp import SmtpRefused, SmtpUnavailable, submit
from tests.certificates import certificate
from tests.integration.conftest import USERS
from tests.integration.server import BridgeServer
from tests.integration.test_doctor import line_of, run_doctor

CONNECT_TIMEOUT = 2.0


class TlsDovecot(Dovecot):
    """A Dovecot with TLS whose certificate file is also the CA file that trusts it."""

    @property
    def ca_file(self) -> str:
        assert self.tls_files is not None
        return str(self.tls_files[0])

    def trusted(self, mode: TlsMode) -> Endpoint:
        """Its IMAP port for ``mode``, with its certificate as the CA file."""
        port = self.tls_port if mode == "implicit" else self.port
        return _endpoint(port, mode, ca_file=self.ca_file)


def _start(folder: Path, *, expired: bool = False) -> TlsDovecot:
    # Submission relays to a port nobody listens on: no test here sends a message.
    files = certificate(folder, expired=expired)
    return TlsDovecot(dict(USERS), relay_port=free_port(), sieve=True, tls_files=files).start()


@pytest.fixture(scope="module")
def tls_dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsDovecot]:
    dovecot = _start(tmp_path_factory.mktemp("cert"))
    yield dovecot
    dovecot.stop()


@pytest.fixture(scope="module")
def expired_dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsDovecot]:
    dovecot = _start(tmp_path_factory.mktemp("expired"), expired=True)
    yield dovecot
    dovecot.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for sock in [*accepted, listener]:
        sock.close()


def _endpoint(port: int, tls: TlsMode, **changes: Any) -> Endpoint:
    endpoint = Endpoint("127.0.0.1", port, tls, timeout=10.0, connect_timeout=CONNECT_TIMEOUT)
    return replace(endpoint, **changes)


def _imap_failure(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> str:
    """The reason the IMAP open failed with; checks that the log says it too."""
    with (
        caplog.at_level(logging.WARNING, logger="bridge.imap"),
        pytest.raises(UpstreamUnavailable) as caught,
    ):
        ImapConnection.open(endpoint, "alice", USERS["alice"])
    reason = caught.value.reason
    assert reason is not None
    assert reason in str(caught.value)
    assert any(reason in record.getMessage() for record in caplog.records), caplog.text
    return reason


def test_self_signed_without_ca_file(
    tls_dovecot: TlsDovecot, caplog: pytest.LogCaptureFixture
) -> None:
    reason = _imap_failure(_endpoint(tls_dovecot.tls_port, "implicit"), caplog)
    assert reason.startswith("certificate verify failed: self-signed certificate")
    assert "--upstream-ca-file" in reason


def test_self_signed_after_starttls(
    tls_dovecot: TlsDovecot, caplog: pytest.LogCaptureFixture
) -> None:
    reason = _imap_failure(_endpoint(tls_dovecot.port, "starttls"), caplog)
    assert reason.startswith("certificate verify failed: self-signed certificate")


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_ca_file_makes_it_work(tls_dovecot: TlsDovecot, mode: TlsMode) -> None:
    endpoint = tls_dovecot.trusted(mode)
    with ImapConnection.open(endpoint, "alice", USERS["alice"]) as connection:
        assert connection.status("INBOX").uidvalidity > 0


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_hostname_mismatch(
    tls_dovecot: TlsDovecot, mode: TlsMode, caplog: pytest.LogCaptureFixture
) -> None:
    # "localhost" reaches the same server, whose certificate names only 127.0.0.1.
    endpoint = tls_dovecot.trusted(mode)
    reason = _imap_failure(replace(endpoint, host="localhost"), caplog)
    assert reason == "hostname mismatch: expected localhost, the certificate is for 127.0.0.1"


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_expired_certificate(
    expired_dovecot: TlsDovecot, mode: TlsMode, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = expired_dovecot.trusted(mode)
    reason = _imap_failure(endpoint, caplog)
    assert reason.startswith("certificate has expired (on ")


def test_starttls_against_implicit_tls_port(
    tls_dovecot: TlsDovecot, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = replace(tls_dovecot.trusted("implicit"), tls="starttls")
    started = time.monotonic()
    reason = _imap_failure(endpoint, caplog)
    elapsed = time.monotonic() - started
    assert reason == (
        "no greeting within 2 s: is this an implicit-TLS port? try --upstream-tls implicit"
    )
    assert CONNECT_TIMEOUT <= elapsed < CONNECT_TIMEOUT + 1.5, elapsed


def test_implicit_tls_against_plaintext_port(
    tls_dovecot: TlsDovecot, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = replace(tls_dovecot.trusted("starttls"), tls="implicit")
    reason = _imap_failure(endpoint, caplog)
    assert reason == "no TLS on this port (plaintext greeting): try --upstream-tls starttls"


def test_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    reason = _imap_failure(_endpoint(free_port(), "implicit"), caplog)
    assert reason == "connection refused"


def test_name_does_not_resolve(caplog: pytest.LogCaptureFixture) -> None:
    # .invalid never resolves (RFC 6761 §6.4); the resolver answers without the network.
    endpoint = replace(_endpoint(993, "implicit"), host="imap.bridge-test.invalid")
    reason = _imap_failure(endpoint, caplog)
    assert reason == "name does not resolve: imap.bridge-test.invalid"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("implicit", "TLS handshake timed out after 2 s: the server sent nothing"),
        ("plain", "no greeting within 2 s: is this an implicit-TLS port? "
                  "try --upstream-tls implicit"),
    ],
)  # fmt: skip
def test_silent_server_times_out(
    silent_port: int, mode: TlsMode, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    reason = _imap_failure(_endpoint(silent_port, mode), caplog)
    assert reason == expected
    assert time.monotonic() - started < CONNECT_TIMEOUT + 1.5


@pytest.mark.parametrize(
    ("says", "expected"),
    [
        (b"", "connection closed before the greeting"),
        (b"* BYE Too many connections\r\n", "not an IMAP greeting: * BYE Too many connections"),
        (b"220 smtp.example.org ESMTP\r\n", "not an IMAP greeting: 220 smtp.example.org ESMTP"),
    ],
)
def test_server_that_is_not_imap(
    says: bytes, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.sendall(says)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with listener:
        reason = _imap_failure(_endpoint(listener.getsockname()[1], "plain"), caplog)
    thread.join()
    assert reason == expected


# -- SMTP submission and ManageSieve take the same path ----------------------------------


def test_submission_tls(tls_dovecot: TlsDovecot, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = _endpoint(tls_dovecot.submission_port, "starttls", setting="submission")
    message = b"Subject: x\r\n\r\nx\r\n"
    with (
        caplog.at_level(logging.WARNING, logger="bridge.smtp"),
        pytest.raises(SmtpUnavailable) as caught,
    ):
        submit(
            endpoint, ("alice", USERS["alice"]), "alice@example.org", ["bob@example.org"], message
        )
    assert caught.value.reason is not None
    assert caught.value.reason.startswith("certificate verify failed: self-signed certificate")
    assert "--submission-ca-file" in caught.value.reason
    assert caught.value.reason in caplog.text
    # Trusted, TLS works: the wrong password is what the server then refuses.
    trusted = replace(endpoint, ca_file=tls_dovecot.ca_file)
    with pytest.raises(SmtpUnavailable) as caught:
        submit(replace(trusted, host="localhost"), ("alice", "x"), "a@b.c", ["d@e.f"], message)
    assert caught.value.reason == (
        "hostname mismatch: expected localhost, the certificate is for 127.0.0.1"
    )
    with pytest.raises(SmtpRefused) as refused:
        submit(trusted, ("alice", "wrong"), "alice@example.org", ["bob@example.org"], message)
    assert refused.value.stage == "auth"


def test_sieve_tls(tls_dovecot: TlsDovecot, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = _endpoint(tls_dovecot.sieve_port, "starttls", setting="sieve")
    with (
        caplog.at_level(logging.WARNING, logger="bridge.sieve"),
        pytest.raises(SieveUnavailable) as caught,
    ):
        ManageSieve.open(endpoint, "alice", USERS["alice"])
    assert caught.value.reason is not None
    assert caught.value.reason.startswith("certificate verify failed: self-signed certificate")
    assert caught.value.reason in caplog.text
    trusted = replace(endpoint, ca_file=tls_dovecot.ca_file)
    with pytest.raises(SieveUnavailable) as caught:
        ManageSieve.open(replace(trusted, host="localhost"), "alice", USERS["alice"])
    assert caught.value.reason == (
        "hostname mismatch: expected localhost, the certificate is for 127.0.0.1"
    )
    with ManageSieve.open(trusted, "alice", USERS["alice"]) as sieve:
        assert sieve.list_scripts() == []
    with pytest.raises(SieveAuthFailed):
        ManageSieve.open(trusted, "alice", "wrong")


def test_sieve_against_silent_port(silent_port: int) -> None:
    endpoint = _endpoint(silent_port, "starttls", setting="sieve")
    with pytest.raises(SieveUnavailable) as caught:
        ManageSieve.open(endpoint, "alice", USERS["alice"])
    assert caught.value.reason == (
        "no greeting within 2 s: is this an implicit-TLS port? try --sieve-tls implicit"
    )


# -- what an operator sees when a client logs in -------------------------------------------


def test_login_log_names_the_reason(
    tls_dovecot: TlsDovecot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = BridgeServer(
        tls_dovecot.host, tls_dovecot.tls_port, tmp_path, upstream_tls="implicit",
        upstream_connect_timeout=CONNECT_TIMEOUT,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="bridge.http"), server:
        response = server.client("alice", USERS["alice"]).http.get("/jmap/session")
    assert response.status_code == 503
    assert "upstream unavailable while authenticating alice: " in caplog.text
    assert "certificate verify failed: self-signed certificate" in caplog.text


def test_settings_carry_the_ca_files(tmp_path: Path) -> None:
    upstream_ca, sieve_ca = tmp_path / "upstream.pem", tmp_path / "sieve.pem"
    upstream_ca.write_text("")
    sieve_ca.write_text("")
    flags = {
        "upstream_ca_file": str(upstream_ca), "sieve_ca_file": str(sieve_ca),
        "submission_port": 587, "sieve_port": 4190,
    }  # fmt: skip
    settings = load_settings(flags, environ={})
    assert settings.imap_endpoint.ca_file == str(upstream_ca)
    assert settings.smtp_endpoint is not None and settings.sieve_endpoint is not None
    assert settings.smtp_endpoint.ca_file == str(upstream_ca)
    assert settings.sieve_endpoint.ca_file == str(sieve_ca)
    assert settings.imap_endpoint.connect_timeout == 10.0
    with pytest.raises(ConfigError, match="no such file"):
        load_settings({"upstream_ca_file": str(tmp_path / "missing.pem")}, environ={})


def test_doctor_reports_tls(tls_dovecot: TlsDovecot) -> None:
    args = [
        "--upstream-port", str(tls_dovecot.tls_port), "--upstream-tls", "implicit",
        "--submission-port", str(tls_dovecot.submission_port),
        "--sieve-port", str(tls_dovecot.sieve_port), "--user", "alice",
    ]  # fmt: skip
    code, output = run_doctor(*args, "--upstream-ca-file", tls_dovecot.ca_file)
    assert code == 0, output
    assert line_of(output, "connect:").startswith("connect:      ok, TLSv1.")
    assert line_of(output, "certificate:") == "certificate:  CN=127.0.0.1, issued by CN=127.0.0.1"
    assert line_of(output, "valid until").endswith(" UTC for 127.0.0.1")
    address = f"127.0.0.1:{tls_dovecot.submission_port} (starttls)"
    assert line_of(output, "SMTP submission") == f"SMTP submission {address}"
    assert "AUTH PLAIN LOGIN" in output
    assert output.count("login:        ok as alice") == 2  # IMAP and ManageSieve
    assert line_of(output, "VacationResponse").split()[1] == "full"
    # Without the CA file: not usable, and why.
    code, output = run_doctor(*args)
    assert code == 1
    assert line_of(output, "connect:") == (
        "connect:      FAILED: certificate verify failed: self-signed certificate "
        "(trust it with --upstream-ca-file)"
    )
