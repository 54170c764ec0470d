"""One POST of a push message to a subscription's URL (RFC 8620 §7.2, RFC 8030 §5).

Each attempt checks the URL and resolves its name afresh (see bridge.webpush.targets),
connects to a checked address, follows no redirect and reads no response body: all it
learns is the status, which says whether to try again, slow down or give up for good.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from bridge.store.push_subscriptions import PushSubscriptionRecord
from bridge.webpush.encryption import CONTENT_ENCODING, encrypt
from bridge.webpush.targets import TargetRefused, Unresolvable, parse_target, pinned, resolve_async

log = logging.getLogger("bridge.webpush")

# RFC 8030 §5.2: how long a push service keeps a message for an offline device. A day:
# a StateChange older than that tells a client nothing its next sync would not.
TTL_SECONDS = 86400
TIMEOUT = 10.0
MAX_RETRY_AFTER = 600.0


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # 5xx, 429 or the network: the same message may go again later
    GONE = "gone"  # 404 or 410: the subscription is dead (RFC 8030 §7.3)
    FAILED = "failed"  # anything else: this message is dropped


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    status: int | None = None
    retry_after: float | None = None  # seconds, from a Retry-After the receiver sent

    @property
    def slow_down(self) -> bool:
        return self.status == 429


def classify(status: int, retry_after: str | None = None) -> Attempt:
    if 200 <= status < 300:
        return Attempt(Outcome.DELIVERED, status)
    if status in (404, 410):
        return Attempt(Outcome.GONE, status)
    if status == 429 or status >= 500:
        return Attempt(Outcome.RETRY, status, _seconds(retry_after))
    return Attempt(Outcome.FAILED, status)


def _seconds(value: str | None) -> float | None:
    # Only the delta-seconds form; an HTTP-date falls back to our own backoff.
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), MAX_RETRY_AFTER)


class PushSender:
    def __init__(self, allow_private: bool, timeout: float = TIMEOUT) -> None:
        self.allow_private = allow_private
        # No pooled connections: a connection opened for one name must not carry a
        # request for another name that resolved to the same address. No proxies from
        # the environment either, since they would connect to the name, unchecked.
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def post(self, record: PushSubscriptionRecord, message: dict[str, Any]) -> Attempt:
        body = msgspec.json.encode(message)
        headers = {"Content-Type": "application/json", "TTL": str(TTL_SECONDS)}
        if record.p256dh is not None and record.auth is not None:
            body = encrypt(body, record.p256dh, record.auth)
            headers["Content-Encoding"] = CONTENT_ENCODING
        try:
            target = parse_target(record.url, self.allow_private)
            addresses = await resolve_async(target, self.allow_private)
        except Unresolvable as exc:
            log.info("push to subscription %s: %s", record.id, exc)
            return Attempt(Outcome.RETRY)
        except TargetRefused as exc:
            # Checked at creation; the name now points somewhere bridge does not go.
            log.warning("push to subscription %s refused: %s", record.id, exc)
            return Attempt(Outcome.FAILED)
        url, host, extensions = pinned(target, addresses[0])
        try:
            async with self._client.stream(
                "POST", url, content=body, headers={**headers, **host}, extensions=extensions
            ) as response:
                return classify(response.status_code, response.headers.get("retry-after"))
        except httpx.HTTPError as exc:
            log.info("push to subscription %s failed: %s", record.id, type(exc).__name__)
            return Attempt(Outcome.RETRY)

    async def aclose(self) -> None:
        await self._client.aclose()
