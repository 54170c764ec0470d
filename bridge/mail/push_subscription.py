"""PushSubscription/get and /set (RFC 8620 §7.2).

Not tied to an account: no accountId, no state, no ifInState. A user's subscriptions are
those created with the same username. ``url`` and ``keys`` are never shown back. The
verification code is the client's to set: the one sent in the PushVerification appears in
no response, so only a client that received the push can activate its subscription.
Delivery is bridge.webpush's; the handlers reach it through a PushOutbox.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import time
from typing import Any, Protocol

import msgspec

from bridge.jmap import CORE_CAPABILITY, CallContext, MethodError, MethodSpec, decode_args
from bridge.jmap.patch import top_level_properties
from bridge.mail.account import UserData
from bridge.mail.common import account_of, translating_upstream_errors
from bridge.mail.email_get import utc_date
from bridge.mail.setting import Refused, apply_each, patched
from bridge.mime.dates import parse_utc_date
from bridge.store.push_subscriptions import PushSubscriptionRecord, PushSubscriptionStore

PROPERTIES = ("id", "deviceClientId", "url", "keys", "verificationCode", "expires", "types")
PRIVATE = frozenset({"url", "keys"})
IMMUTABLE = ("id", "deviceClientId", "url", "keys")
# RFC 8620 §8.6: a user's subscriptions must be limited. Lifetimes are capped at a week,
# the RFC's recommended minimum for Basic credentials, which do not expire by themselves.
MAX_SUBSCRIPTIONS = 16
MAX_LIFETIME = 7 * 24 * 3600
MAX_STRING = 1024


class PushOutbox(Protocol):
    """What the handlers need of delivery (bridge.webpush.service.WebPush)."""

    allow_private: bool

    def admit(self, username: str) -> bool: ...
    def verify(self, user: UserData, record: PushSubscriptionRecord) -> None: ...
    def changed(self, username: str) -> None: ...


class PushGetArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ids: list[str] | None = None
    properties: list[str] | None = None


class PushSetArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    create: dict[str, dict[str, Any]] | None = None
    update: dict[str, dict[str, Any]] | None = None
    destroy: list[str] | None = None


def push_subscription_methods(outbox: PushOutbox) -> list[MethodSpec]:
    """The two methods, through the one error table (their store is the user's cache)."""
    set_method = functools.partial(push_subscription_set, outbox=outbox)
    return [
        MethodSpec("PushSubscription/get", CORE_CAPABILITY,
                   translating_upstream_errors(push_subscription_get), account_scoped=False),
        MethodSpec("PushSubscription/set", CORE_CAPABILITY,
                   translating_upstream_errors(set_method), account_scoped=False),
    ]  # fmt: skip


def _user(ctx: CallContext) -> UserData:
    return account_of(ctx).user


def wire_object(record: PushSubscriptionRecord) -> dict[str, Any]:
    keys = None
    if record.p256dh is not None and record.auth is not None:
        keys = {"p256dh": record.p256dh, "auth": record.auth}
    return {
        "id": record.id,
        "deviceClientId": record.device_client_id,
        "url": record.url,
        "keys": keys,
        "verificationCode": record.verification_code,
        "expires": utc_date(record.expires),
        "types": list(record.types) if record.types is not None else None,
    }


def push_subscription_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(PushGetArgs, args)
    if request.properties is None:
        wanted = set(PROPERTIES) - PRIVATE
    else:
        unknown = [name for name in request.properties if name not in PROPERTIES]
        if unknown:
            raise MethodError("invalidArguments", f"unknown properties: {', '.join(unknown)}")
        if PRIVATE & set(request.properties):
            raise MethodError("forbidden", "url and keys are never returned")
        wanted = {*request.properties, "id"}
    if request.ids is not None:
        ctx.check_max_objects(len(request.ids), "maxObjectsInGet")
    by_id = {r.id: r for r in PushSubscriptionStore.of(_user(ctx).cache).live()}
    ids = list(by_id) if request.ids is None else list(dict.fromkeys(request.ids))
    return {
        "list": [
            {key: value for key, value in wire_object(by_id[i]).items() if key in wanted}
            for i in ids
            if i in by_id
        ],
        "notFound": [i for i in ids if i not in by_id],
    }


def push_subscription_set(
    ctx: CallContext, args: dict[str, Any], *, outbox: PushOutbox
) -> dict[str, Any]:
    request = decode_args(PushSetArgs, args)
    count = sum(len(part) for part in (request.create, request.update, request.destroy) if part)
    ctx.check_max_objects(count, "maxObjectsInSet")
    return _Setter(ctx, outbox).run(request)


def _string(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_STRING:
        raise Refused("invalidProperties", f"{name} must be a non-empty String", [name])
    return value


def _keys(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict) or set(value) != {"p256dh", "auth"}:
        raise Refused("invalidProperties", "keys has exactly p256dh and auth", ["keys"])
    p256dh, auth = value["p256dh"], value["auth"]
    if not isinstance(p256dh, str) or not isinstance(auth, str):
        raise Refused("invalidProperties", "p256dh and auth are Strings", ["keys"])
    # Loaded here, not at start: see WebPush.sender.
    from bridge.webpush.encryption import InvalidKeys, receiver_keys

    try:
        receiver_keys(p256dh, auth)
    except InvalidKeys as exc:
        raise Refused("invalidProperties", str(exc), ["keys"]) from None
    return p256dh, auth


def _types(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise Refused("invalidProperties", "types must be null or a list of type names", ["types"])
    return tuple(dict.fromkeys(value))


def _expires(value: Any, now: float) -> int:
    """The expiry to use: the one asked for, capped at MAX_LIFETIME from now."""
    latest = int(now) + MAX_LIFETIME
    if value is None:
        return latest
    parsed = parse_utc_date(value) if isinstance(value, str) else None
    moment = int(parsed.timestamp()) if parsed is not None else 0
    if not moment:
        raise Refused("invalidProperties", "expires must be a UTCDate", ["expires"])
    if moment <= now:
        raise Refused("invalidProperties", "expires must be in the future", ["expires"])
    return min(moment, latest)


class _Setter:
    def __init__(self, ctx: CallContext, outbox: PushOutbox) -> None:
        self.ctx = ctx
        self.outbox = outbox
        self.user = _user(ctx)
        self.store = PushSubscriptionStore.of(self.user.cache)
        self.now = time.time()
        self.by_id = {r.id: r for r in self.store.live(self.now)}
        self.changed = False

    def run(self, request: PushSetArgs) -> dict[str, Any]:
        results = apply_each(request, self._create, self._update, self._destroy)
        if self.changed:
            self.outbox.changed(self.user.username)
        return results

    def _create(self, creation_id: str, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise Refused("invalidProperties", "a PushSubscription must be an object")
        not_settable = sorted(key for key in obj if key not in PROPERTIES or key == "id")
        if not_settable:
            raise Refused("invalidProperties", "not settable on create", not_settable)
        if obj.get("verificationCode") is not None:
            raise Refused("invalidProperties", "verificationCode must be null on create",
                          ["verificationCode"])  # fmt: skip
        device_client_id = _string(obj, "deviceClientId")
        url = _string(obj, "url")
        p256dh, auth = _keys(obj.get("keys"))
        types = _types(obj.get("types"))
        expires = _expires(obj.get("expires"), self.now)
        from bridge.webpush.targets import TargetRefused, parse_target, resolve

        try:
            resolve(parse_target(url, self.outbox.allow_private), self.outbox.allow_private)
        except TargetRefused as exc:
            raise Refused("invalidProperties", f"url refused: {exc}", ["url"]) from None
        if not self.outbox.admit(self.user.username):
            raise Refused("rateLimit", "too many push subscriptions created lately; try later")
        record = PushSubscriptionRecord(
            id="P" + secrets.token_urlsafe(15),
            device_client_id=device_client_id,
            url=url,
            p256dh=p256dh,
            auth=auth,
            expected_code=secrets.token_urlsafe(24),
            expires=expires,
            types=types,
        )
        if not self.store.add(record, MAX_SUBSCRIPTIONS):
            raise Refused("overQuota", f"at most {MAX_SUBSCRIPTIONS} push subscriptions a user")
        self.by_id[record.id] = record
        self.ctx.created_ids[creation_id] = record.id
        self.outbox.verify(self.user, record)
        self.changed = True
        server_set = {"id": record.id, "expires": utc_date(expires)}
        defaults = {name: None for name in ("keys", "verificationCode", "types") if name not in obj}
        return {**server_set, **defaults}

    def _find(self, subscription_id: str) -> PushSubscriptionRecord:
        real_id = self.ctx.resolve_creation_id(subscription_id) or subscription_id
        record = self.by_id.get(real_id)
        if record is None:
            raise Refused("notFound", f"no push subscription {subscription_id}")
        return record

    def _update(self, subscription_id: str, patch: Any) -> dict[str, Any] | None:
        record = self._find(subscription_id)
        if not isinstance(patch, dict):
            raise Refused("invalidPatch", "a PatchObject must be an object")
        current = wire_object(record)
        wanted = patched(current, patch)
        unknown = sorted(key for key in wanted if key not in PROPERTIES)
        if unknown:
            raise Refused("invalidProperties", "no such properties", unknown)
        immutable = [name for name in IMMUTABLE if wanted.get(name) != current[name]]
        if immutable:
            raise Refused("invalidProperties", "immutable", immutable)
        code = wanted.get("verificationCode")
        if code != record.verification_code and not (
            isinstance(code, str)
            and hmac.compare_digest(code.encode(), record.expected_code.encode())
        ):
            raise Refused("invalidProperties", "not the verification code that was pushed",
                          ["verificationCode"])  # fmt: skip
        expires = record.expires
        if wanted.get("expires") != current["expires"]:
            expires = _expires(wanted.get("expires"), self.now)
        new = msgspec.structs.replace(
            record, verification_code=code, expires=expires, types=_types(wanted.get("types"))
        )
        if new != record:
            if not self.store.replace(new):
                raise Refused("notFound", f"no push subscription {subscription_id}")
            self.by_id[new.id] = new
            self.changed = True
        # The server may have shortened the expiry asked for: say which one it uses.
        return {"expires": utc_date(expires)} if "expires" in top_level_properties(patch) else None

    def _destroy(self, subscription_id: str) -> None:
        record = self._find(subscription_id)
        self.store.remove(record.id)
        del self.by_id[record.id]
        self.changed = True
