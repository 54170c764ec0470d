"""Where bridge may POST a push: the defence against server-side request forgery.

RFC 8620 §8.6 wants a push URL "externally resolvable": a client must not make bridge
POST into its own network. So a URL must be https, its name must resolve only to
globally routable addresses (every address the name has, not only the first), and the
connection goes to an address that was checked, never to the name again: a DNS answer
that changes between the check and the connect (rebinding) gains nothing. TLS still
checks the certificate against the name (see ``pinned``).

``allow_private`` (a setting, for tests and LAN setups) admits plain http and private,
loopback, link-local and shared addresses. Cloud metadata endpoints, multicast and the
unspecified address stay refused whatever the setting.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
# Instance metadata services (AWS, GCP and Azure share the first; AWS's IPv6 one; Alibaba).
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the low 32 bits are an IPv4 address


class TargetRefused(Exception):
    """bridge will not POST to this URL; the message says why, for the client."""


class Unresolvable(TargetRefused):
    """The name did not resolve: maybe for good, maybe only for now."""


@dataclass(frozen=True)
class PushTarget:
    url: httpx.URL
    host: str  # as DNS and TLS see it: IDNA-encoded, IPv6 without brackets
    port: int

    @property
    def is_address(self) -> bool:
        return _parse_address(self.host) is not None


def parse_target(url: str, allow_private: bool) -> PushTarget:
    """The URL's parts, or TargetRefused for one bridge never posts to."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the url is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused(f"not a valid URL: {exc}") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes:
        raise TargetRefused("the url must begin with https://")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise TargetRefused("the url has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return PushTarget(parsed, host, port)


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why bridge must not connect to ``address``, or None if it may."""
    for inner in _embedded_ipv4(address):
        reason = refusal(inner, allow_private)
        if reason:
            return reason
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_unspecified or address.is_multicast:
        return "not a unicast address"
    if allow_private:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.version == 4 and address in SHARED:
        return "a shared (CGNAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "not a globally routable address"
    return None


def check_addresses(host: str, addresses: list[IPAddress], allow_private: bool) -> list[IPAddress]:
    """``addresses`` if every one of them may be connected to; else TargetRefused."""
    if not addresses:
        raise TargetRefused(f"{host} has no address")
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason:
            raise TargetRefused(f"{host} resolves to {address}, {reason}")
    return addresses


def resolve(target: PushTarget, allow_private: bool) -> list[IPAddress]:
    """The target's addresses, all checked; blocks while the name resolves."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"{target.host} does not resolve: {exc}") from None
    return check_addresses(target.host, _addresses(infos), allow_private)


async def resolve_async(target: PushTarget, allow_private: bool) -> list[IPAddress]:
    """As ``resolve``, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"{target.host} does not resolve: {exc}") from None
    return check_addresses(target.host, _addresses(infos), allow_private)


def pinned(target: PushTarget, address: IPAddress) -> tuple[httpx.URL, dict[str, str], Any]:
    """The request URL with the checked address in place of the name, the Host header,
    and the request extensions that keep TLS (SNI and the certificate check) on the name."""
    url = target.url.copy_with(host=str(address).partition("%")[0])
    headers = {"Host": target.url.netloc.decode("ascii")}
    extensions = {}
    if target.url.scheme == "https" and not target.is_address:
        extensions["sni_hostname"] = target.host
    return url, headers, extensions


def _addresses(infos: list[Any]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = _parse_address(str(sockaddr[0]))
        if address is not None and address not in found:
            found.append(address)
    return found


def _parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address reaches through a translation mechanism."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address in NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.teredo is not None:
        found.extend(address.teredo)
    return found
