"""A user's PushSubscriptions (RFC 8620 §7.2), in a table of the user's cache.

They sit outside the change log (a PushSubscription has no state) and are few, so every
read returns all of the user's live ones. Expired rows are deleted on the way: the RFC
lets a server destroy a subscription once it expires, and a URL nobody may push to any
more is data worth forgetting. Deletes run through ``Cache.erasing``: on SQLite with
``secure_delete``, so the URL and keys are overwritten on disk rather than left in free
pages (RFC 8620 §7.2); PostgreSQL reclaims a deleted row's space at its next VACUUM.
"""

from __future__ import annotations

import time

import msgspec

from bridge.store.cache import Cache

_COLUMNS = (
    "id, device_client_id, url, p256dh, auth, expected_code, verification_code, expires, types"
)


class PushSubscriptionRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    device_client_id: str
    url: str
    p256dh: str | None = None
    auth: str | None = None
    # What the PushVerification carried; never shown to the client.
    expected_code: str
    # What the client set: only ever the expected code, so not None means verified.
    verification_code: str | None = None
    expires: int
    types: tuple[str, ...] | None = None

    @property
    def verified(self) -> bool:
        return self.verification_code is not None


def _record(row: tuple[object, ...]) -> PushSubscriptionRecord:
    types = row[8]
    return PushSubscriptionRecord(
        id=str(row[0]),
        device_client_id=str(row[1]),
        url=str(row[2]),
        p256dh=row[3] if isinstance(row[3], str) else None,
        auth=row[4] if isinstance(row[4], str) else None,
        expected_code=str(row[5]),
        verification_code=row[6] if isinstance(row[6], str) else None,
        expires=int(row[7]),  # type: ignore[call-overload]
        types=tuple(msgspec.json.decode(types, type=list[str])) if isinstance(types, str) else None,
    )


def _values(record: PushSubscriptionRecord) -> tuple[object, ...]:
    types = msgspec.json.encode(list(record.types)).decode() if record.types is not None else None
    return (
        record.id, record.device_client_id, record.url, record.p256dh, record.auth,
        record.expected_code, record.verification_code, record.expires, types,
    )  # fmt: skip


class PushSubscriptionStore:
    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    @classmethod
    def of(cls, cache: object) -> PushSubscriptionStore:
        """The store in a user's cache (typed as the mail layer's Store)."""
        if not isinstance(cache, Cache):
            raise TypeError("push subscriptions are kept in the cache's database")
        return cls(cache)

    def live(self, now: float | None = None) -> list[PushSubscriptionRecord]:
        """Every subscription not yet expired, oldest expiry first; the expired are deleted."""
        now = int(time.time() if now is None else now)
        with self._cache.sql() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM push_subscriptions ORDER BY expires, id"
            ).fetchall()
        records = [_record(row) for row in rows]
        if any(record.expires <= now for record in records):
            with self._cache.erasing() as conn:
                conn.execute("DELETE FROM push_subscriptions WHERE expires <= ?", (now,))
        return [record for record in records if record.expires > now]

    def add(self, record: PushSubscriptionRecord, limit: int) -> bool:
        """Store a new subscription unless the user already has ``limit`` of them."""
        with self._cache.transaction(), self._cache.sql() as conn:
            (count,) = conn.execute("SELECT count(*) FROM push_subscriptions").fetchone()
            added = count < limit
            if added:
                conn.execute(
                    f"INSERT INTO push_subscriptions({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                    _values(record),
                )
        return added

    def replace(self, record: PushSubscriptionRecord) -> bool:
        """Store a changed subscription; False if it is gone meanwhile."""
        with self._cache.sql() as conn:
            cursor = conn.execute(
                "UPDATE push_subscriptions SET verification_code = ?, expires = ?, types = ? "
                "WHERE id = ?",
                (record.verification_code, record.expires, _values(record)[8], record.id),
            )
        return cursor.rowcount > 0

    def remove(self, subscription_id: str) -> bool:
        with self._cache.erasing() as conn:
            cursor = conn.execute("DELETE FROM push_subscriptions WHERE id = ?", (subscription_id,))
        return cursor.rowcount > 0
