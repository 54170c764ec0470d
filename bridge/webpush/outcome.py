"""What the answer to a push POST means: delivered, try again, or give up
(RFC 8030 §5, §7.3). Kept apart from the sender, which loads the HTTP client."""

from __future__ import annotations

import enum
from dataclasses import dataclass

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
