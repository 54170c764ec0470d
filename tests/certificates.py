"""A throwaway self-signed certificate for 127.0.0.1, for tests that need TLS."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) files for 127.0.0.1 in ``folder``."""
    if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
        pytest.fail("openssl is not installed (bash .ci/run installs it)")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(folder: Path) -> ssl.SSLContext:
    """A TLS server context with a new self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed(folder))
    return context
