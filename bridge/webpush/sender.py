"""One POST of a push message to a subscription's URL (RFC 8620 §7.2, RFC 8030 §5).

Each attempt checks the URL and resolves its name afresh (see bridge.webpush.targets),
connects to a checked address, follows no redirect and reads no response body: all it
learns is the status, which says whether to try again, slow down or give up for good.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import msgspec

from bridge import metrics
from bridge.store.push_subscriptions import PushSubscriptionRecord
from bridge.webpush.encryption import CONTENT_ENCODING, encrypt
from bridge.webpush.outcome import Attempt, Outcome, classify
from bridge.webpush.targets import TargetRefused, Unresolvable, parse_target, pinned, resolve_async

log = logging.getLogger("bridge.webpush")

# RFC 8030 §5.2: how long a push service keeps a message for an offline device. A day:
# a StateChange older than that tells a client nothing its next sync would not.
TTL_SECONDS = 86400
TIMEOUT = 10.0


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
        attempt = await self._post(record, message)
        metrics.PUSH_DELIVERIES.labels(attempt.outcome.value).inc()
        return attempt

    async def _post(self, record: PushSubscriptionRecord, message: dict[str, Any]) -> Attempt:
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
