"""Where an upstream service listens and how to reach it: the IMAP server, SMTP submission
and ManageSieve all take one of these."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
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
