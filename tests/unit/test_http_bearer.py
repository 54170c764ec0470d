"""OAuth pieces without a mail server: the SASL messages, the token caches, JWTs checked
against a JWK Set served on loopback, and the provider presets."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.config import ConfigError, Settings, load_settings
from bridge.credentials import Credentials
from bridge.endpoint import AccessToken, oauth_login, sasl_oauth
from bridge.http.auth import bearer_token
from bridge.http.bearer import OAuthIdentity, TokenCache
from bridge.http.token_store import PER_USER, TokenStore
from tests.json_http import JsonHandler


@pytest.mark.parametrize(
    ("mechanism", "username", "decoded"),
    [
        ("XOAUTH2", "alice@example.com",
         b"user=alice@example.com\x01auth=Bearer ya29.tok\x01\x01"),
        ("OAUTHBEARER", "alice@example.com",
         b"n,a=alice@example.com,\x01host=imap.example.com\x01port=993\x01"
         b"auth=Bearer ya29.tok\x01\x01"),
        # RFC 5801 saslname: "," and "=" in the authzid are escaped.
        ("OAUTHBEARER", "a,b=c", b"n,a=a=2Cb=3Dc,\x01host=imap.example.com\x01port=993\x01"
                                 b"auth=Bearer ya29.tok\x01\x01"),
    ],
)  # fmt: skip
def test_sasl_oauth_initial_responses(mechanism: str, username: str, decoded: bytes) -> None:
    message = sasl_oauth(mechanism, username, "ya29.tok", "imap.example.com", 993)
    assert base64.b64decode(message) == decoded


@pytest.mark.parametrize("bad", ["tok\x01en", "tok\r\nA1 LOGOUT", "tok\0"])
def test_a_control_character_in_a_token_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        sasl_oauth("XOAUTH2", "alice", bad, "h", 1)


def test_mechanism_choice_and_error_answers() -> None:
    def login(*offered: str) -> tuple[str, bytes] | None:
        found = oauth_login(offered, "alice", "tok", "h", 1)
        return None if found is None else (found.mechanism, found.error_answer)

    assert login("PLAIN", "XOAUTH2", "OAUTHBEARER") == ("OAUTHBEARER", base64.b64encode(b"\x01"))
    assert login("plain", "xoauth2") == ("XOAUTH2", b"")
    assert login("PLAIN", "LOGIN") is None
    assert "tok" not in repr(oauth_login(["XOAUTH2"], "alice", "tok", "h", 1))


def test_an_access_token_is_a_str_that_hides_itself() -> None:
    token = AccessToken("secret-token")
    assert token == "secret-token" and isinstance(token, str)
    assert "secret" not in repr(token) and "secret" not in repr(Credentials("a", token))


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc.def", "abc.def"), ("bearer  abc ", "abc"), ("Bearer", None),
     ("Bearer ", None), ("Basic YTpi", None), (None, None)],
)  # fmt: skip
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_token_cache_holds_digests_ages_and_is_bounded() -> None:
    cache = TokenCache(ttl=60, size=3)
    cache.put("token-1", "alice", expires=None)
    cache.put("token-2", "bob", expires=time.time() - 1)  # already past its own expiry
    assert cache.get("token-1") == "alice" and cache.get("token-2") is None
    assert all(b"token" not in key for key in cache._entries)
    for n in range(3, 7):
        cache.put(f"token-{n}", "carol", expires=None)
    assert len(cache) == 3 and cache.get("token-1") is None  # the oldest went first
    cache.forget("token-6")
    assert cache.get("token-6") is None
    short = TokenCache(ttl=0.05)
    short.put("t", "dave", expires=None)
    time.sleep(0.06)
    assert short.get("t") is None


def test_token_store_revoke_expiry_and_per_user_bound() -> None:
    store = TokenStore(lifetime=60)
    alice = Credentials("alice", "pw")
    token, expires = store.issue(alice)
    assert expires == pytest.approx(time.time() + 60, abs=2)
    assert store.redeem(token) == alice
    assert all(token.encode() not in key for key in store._tokens)
    assert store.revoke(token) is True and store.redeem(token) is None
    assert store.revoke(token) is False
    tokens = [store.issue(alice)[0] for _ in range(PER_USER + 5)]
    bob = store.issue(Credentials("bob", "pw"))[0]
    assert len(store) == PER_USER + 1
    assert store.redeem(tokens[0]) is None and store.redeem(tokens[-1]) == alice
    assert store.redeem(bob) is not None
    brief = TokenStore(lifetime=0.05)
    short = brief.issue(alice)[0]
    time.sleep(0.06)
    assert brief.redeem(short) is None


# -- JWTs --------------------------------------------------------------------------------

ISSUER = "https://auth.example.com"
AUDIENCE = "jmap"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    class Handler(JsonHandler):
        def do_GET(self) -> None:
            self.reply_json(jwks)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()
    server.server_close()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "1234", "email": "alice@example.com",
              "preferred_username": "alice", "iat": now, "exp": now + 600}  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_jwt_tokens(signing_key: rsa.RSAPrivateKey, jwks_url: str) -> None:
    identity = OAuthIdentity(
        Settings(oauth_jwks_url=jwks_url, oauth_issuer=ISSUER, oauth_audience=AUDIENCE)
    )

    def sign(claims: dict[str, Any], key: Any = signing_key, algorithm: str = "RS256") -> str:
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1"})

    def username(token: str) -> str | None:
        return asyncio.run(identity.username(token))

    good = sign(_claims())
    assert username(good) == "alice@example.com"
    assert identity.cached(good) == "alice@example.com"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "expired": sign(_claims(exp=int(time.time()) - 10)),
        "no expiry": sign(_claims(exp=None)),
        "other audience": sign(_claims(aud="mail")),
        "other issuer": sign(_claims(iss="https://evil.example")),
        "other key": sign(_claims(), key=other_key),
        "no email": sign(_claims(email=None)),
        "unsigned": jwt.encode(_claims(), None, algorithm="none", headers={"kid": "k1"}),
        "not a jwt": "ya29.opaque-token",
    }
    assert {name: username(token) for name, token in refused.items()} == dict.fromkeys(refused)
    by_claim = OAuthIdentity(
        Settings(oauth_jwks_url=jwks_url, oauth_username_claim="preferred_username")
    )
    assert asyncio.run(by_claim.username(good)) == "alice"


# -- provider presets --------------------------------------------------------------------


def test_a_provider_fills_what_is_not_given() -> None:
    gmail = load_settings({"provider": "gmail"}, environ={})
    assert (gmail.imap_endpoint.host, gmail.imap_endpoint.port) == ("imap.gmail.com", 993)
    assert gmail.imap_endpoint.tls == "implicit"
    assert gmail.smtp_endpoint is not None
    assert (gmail.smtp_endpoint.host, gmail.smtp_endpoint.port) == ("smtp.gmail.com", 465)
    assert gmail.smtp_endpoint.tls == "implicit" and gmail.upstream_quota is True
    outlook = load_settings(
        {"submission_port": 2525}, environ={"BRIDGE_PROVIDER": "Outlook",
                                            "BRIDGE_UPSTREAM_HOST": "imap.example.org"},
    )  # fmt: skip
    assert outlook.imap_endpoint.host == "imap.example.org"  # explicit wins
    assert outlook.smtp_endpoint is not None
    assert (outlook.smtp_endpoint.host, outlook.smtp_endpoint.port) == ("smtp.office365.com", 2525)
    assert outlook.smtp_endpoint.tls == "starttls"
    with pytest.raises(ConfigError, match="unknown provider"):
        load_settings({"provider": "aol"}, environ={})
    examples = Path(__file__).parents[2] / "examples"
    for name in ("gmail", "fastmail", "bridge"):
        load_settings(environ={}, config_file=examples / f"{name}.toml")
