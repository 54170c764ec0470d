"""Where an upstream service listens and how to reach it: the IMAP server, SMTP submission
and ManageSieve all take one of these."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from typing import Literal

TlsMode = Literal["implicit", "starttls", "plain"]


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: TlsMode = "implicit"
    timeout: float = 30.0
    verify_tls: bool = True

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def sasl_plain(username: str, password: str) -> bytes:
    """The base64 SASL PLAIN message (RFC 4616) that IMAP, SMTP and ManageSieve log in with;
    UnicodeEncodeError for a credential no server could take (a lone surrogate)."""
    return base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode())
