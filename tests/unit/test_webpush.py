"""Push delivery's pure parts: which targets are refused, how a status is read, RFC 8291
encryption, and the subscription store."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import socket
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bridge.store.push_subscriptions import PushSubscriptionRecord, PushSubscriptionStore
from bridge.webpush.encryption import InvalidKeys, encrypt, receiver_keys
from bridge.webpush.sender import Outcome, classify
from bridge.webpush.targets import (
    TargetRefused,
    check_addresses,
    parse_target,
    pinned,
    refusal,
    resolve_async,
)
from tests.support.stores import open_test_cache

# address -> refused with the setting off?, refused with it on?
ADDRESSES = {
    "8.8.8.8": (False, False),
    "2606:4700:4700::1111": (False, False),
    "127.0.0.1": (True, False),
    "127.8.9.10": (True, False),
    "::1": (True, False),
    "10.1.2.3": (True, False),
    "172.16.0.1": (True, False),
    "192.168.1.1": (True, False),
    "100.64.0.1": (True, False),  # CGNAT
    "169.254.1.1": (True, False),  # link-local
    "fe80::1": (True, False),
    "fc00::1": (True, False),  # unique local
    "192.0.2.1": (True, False),  # documentation: not routable
    "240.0.0.1": (True, False),  # reserved
    "::ffff:127.0.0.1": (True, False),  # IPv4-mapped loopback
    "64:ff9b::a00:1": (True, False),  # NAT64 of 10.0.0.1
    "2002:c0a8:101::1": (True, False),  # 6to4 of 192.168.1.1
    "169.254.169.254": (True, True),  # metadata: refused whatever the setting
    "fd00:ec2::254": (True, True),
    "::ffff:169.254.169.254": (True, True),
    "224.0.0.1": (True, True),  # multicast
    "ff02::1": (True, True),
    "0.0.0.0": (True, True),  # unspecified
    "::": (True, True),
}


@pytest.mark.parametrize("address", list(ADDRESSES))
def test_refused_addresses(address: str) -> None:
    strict, lenient = ADDRESSES[address]
    parsed = ipaddress.ip_address(address)
    assert (refusal(parsed, allow_private=False) is not None) == strict
    assert (refusal(parsed, allow_private=True) is not None) == lenient


def test_one_bad_address_refuses_the_name() -> None:
    good, bad = ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.1")
    assert check_addresses("push.example", [good], False) == [good]
    with pytest.raises(TargetRefused, match=r"10\.0\.0\.1"):
        check_addresses("push.example", [good, bad], False)
    with pytest.raises(TargetRefused, match="no address"):
        check_addresses("push.example", [], False)


@pytest.mark.parametrize(
    ("url", "allow_private"),
    [
        ("http://push.example/", False),
        ("ftp://push.example/", True),
        ("https:///nohost", False),
        ("not a url", False),
        ("https://push.example/" + "x" * 3000, False),
    ],
)
def test_refused_urls(url: str, allow_private: bool) -> None:
    with pytest.raises(TargetRefused):
        parse_target(url, allow_private)


def test_pinned_requests_go_to_the_checked_address_and_keep_the_name_for_tls() -> None:
    target = parse_target("https://Push.Example:8443/p/q?x=1", False)
    url, headers, extensions = pinned(target, ipaddress.ip_address("203.0.113.7"))
    assert str(url) == "https://203.0.113.7:8443/p/q?x=1"
    assert headers == {"Host": "push.example:8443"}
    assert extensions == {"sni_hostname": "push.example"}
    url, _, _ = pinned(target, ipaddress.ip_address("2001:db8::7"))
    assert str(url) == "https://[2001:db8::7]:8443/p/q?x=1"
    literal = parse_target("https://[2001:db8::7]/", False)
    assert pinned(literal, ipaddress.ip_address("2001:db8::7"))[2] == {}  # no SNI for an IP
    idn = parse_target("https://bücher.example/", False)
    assert idn.host == "xn--bcher-kva.example"


def test_every_resolution_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that resolves to a public address at one time and a private one the next
    (DNS rebinding) is refused the moment it does."""
    answers = iter(["93.184.216.34", "127.0.0.1"])

    async def getaddrinfo(self: Any, host: str, port: int, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    target = parse_target("https://rebind.example/", False)
    first = asyncio.run(resolve_async(target, False))
    assert first == [ipaddress.ip_address("93.184.216.34")]
    with pytest.raises(TargetRefused, match="loopback"):
        asyncio.run(resolve_async(target, False))


@pytest.mark.parametrize(
    ("status", "retry_after", "outcome", "delay"),
    [
        (201, None, Outcome.DELIVERED, None),
        (410, None, Outcome.GONE, None),
        (404, None, Outcome.GONE, None),
        (429, "7", Outcome.RETRY, 7.0),
        (503, "Wed, 21 Oct 2015 07:28:00 GMT", Outcome.RETRY, None),
        (500, "100000", Outcome.RETRY, 600.0),
        (400, None, Outcome.FAILED, None),
        (301, None, Outcome.FAILED, None),
    ],
)
def test_statuses(status: int, retry_after: str | None, outcome: Outcome, delay: Any) -> None:
    attempt = classify(status, retry_after)
    assert (attempt.outcome, attempt.retry_after) == (outcome, delay)
    assert attempt.slow_down == (status == 429)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_encryption_round_trip() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    auth = os.urandom(16)
    sealed = encrypt(b'{"@type":"StateChange"}', _b64(public), _b64(auth))
    # RFC 8188 header: salt, record size, then the sender's key as the key id.
    assert sealed[20] == 65 and sealed[21] == 4
    opened = http_ece.decrypt(sealed, private_key=private, auth_secret=auth, version="aes128gcm")
    assert opened == b'{"@type":"StateChange"}'
    # Each message has its own sender key and salt.
    assert (
        encrypt(b"x", _b64(public), _b64(auth))[:16] != encrypt(b"x", _b64(public), _b64(auth))[:16]
    )


@pytest.mark.parametrize(
    ("p256dh", "auth"),
    [
        ("AAAA", _b64(os.urandom(16))),  # not a point
        (_b64(b"\x04" + os.urandom(64)), _b64(os.urandom(16))),  # not on the curve
        ("%%%", _b64(os.urandom(16))),  # not base64
    ],
)
def test_bad_keys(p256dh: str, auth: str) -> None:
    with pytest.raises(InvalidKeys):
        receiver_keys(p256dh, auth)


def test_a_short_auth_secret_is_refused() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    with pytest.raises(InvalidKeys, match="16 octets"):
        receiver_keys(_b64(public), _b64(os.urandom(8)))


def _record(sub_id: str, expires: int, **fields: Any) -> PushSubscriptionRecord:
    return PushSubscriptionRecord(
        id=sub_id, device_client_id="d", url="https://push.example/", expected_code="c",
        expires=expires, **fields,
    )  # fmt: skip


def test_store_keeps_live_subscriptions_and_forgets_expired_ones() -> None:
    cache = open_test_cache()
    store = PushSubscriptionStore.of(cache)
    assert store.add(_record("a", 2000, types=("Email",)), limit=2)
    assert store.add(_record("b", 1000, p256dh="k", auth="s"), limit=2)
    assert not store.add(_record("c", 3000), limit=2)  # at the limit
    assert [r.id for r in store.live(now=500)] == ["b", "a"]
    assert store.live(now=500)[1].types == ("Email",)
    verified = _record("a", 2500, types=None, verification_code="c")
    assert store.replace(verified)
    assert [r for r in store.live(now=1500)] == [verified]  # b expired, and is gone
    assert store.live(now=500) == [verified]
    assert store.remove("a") and not store.remove("a")
    assert not store.replace(verified)
    cache.close()
