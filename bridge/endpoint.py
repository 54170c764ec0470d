"""Where an upstream service listens and how to reach it: the IMAP server, SMTP submission
and ManageSieve all take one of these."""

from __future__ import annotations

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
