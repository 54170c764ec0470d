"""Identity/get, /changes and /set (RFC 8621 §6), kept in the user's cache.

A login has one default Identity when an address can be named for it: the login itself
when it is an address, else ``<login>@<mail_domain>`` (setting ``mail_domain``). It is
made on first use, cannot be destroyed (mayDelete false), but its name, replyTo, bcc and
signatures can be changed like any other's. Its id follows from the address, so a changed
``mail_domain`` shows as one default destroyed and another created.

Which addresses a login may send as is bridge's own rule (``bridge.mail.senders``): its
default address, and what the operator grants it. Anything else is forbiddenFrom. The
submission server still applies its own policy when a message goes.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bridge.jmap import CallContext, decode_args
from bridge.jmap.standard import ChangesArgs, GetArgs, SetArgs, check_in_state
from bridge.mail import senders
from bridge.mail.account import Account
from bridge.mail.common import account_of, changes_response
from bridge.mail.setting import Refused, apply_each, patched
from bridge.mail.stored import decode_all, get_response
from bridge.mime.envelope import domain_of, is_mailbox
from bridge.store.ids import derive_id, random_token
from bridge.store.journal import IDENTITY


class EmailAddress(msgspec.Struct, kw_only=True):
    name: str | None = None
    email: str


class Identity(msgspec.Struct, kw_only=True):
    """Every property, always: clients read them without checking they are there."""

    id: str
    name: str = ""
    email: str
    replyTo: list[EmailAddress] | None = None
    bcc: list[EmailAddress] | None = None
    textSignature: str = ""
    htmlSignature: str = ""
    mayDelete: bool = True


PROPERTIES = Identity.__struct_fields__
SERVER_SET = frozenset({"id", "mayDelete"})
IMMUTABLE = frozenset({"id", "email", "mayDelete"})
SETTABLE = frozenset(PROPERTIES) - SERVER_SET


def default_address(username: str, mail_domain: str | None) -> str | None:
    if "@" in username:
        return username if is_mailbox(username) else None
    if mail_domain:
        address = f"{username}@{mail_domain}"
        return address if is_mailbox(address) else None
    return None


def may_send_as(account: Account, address: str) -> bool:
    """Whether this account's login may send as ``address`` (bridge.mail.senders)."""
    settings = account.settings
    return senders.may_send_as(
        account.user.username,
        account_default(account),
        address,
        allowed_identities=settings.allowed_identities,
        send_as_domain=settings.send_as_domain,
    )


def identity_allows(identity: Identity, address: str) -> bool:
    """Whether a message from ``address`` may go out under ``identity``; ``*@domain``
    stands for every address at that domain (RFC 8621 §6)."""
    local, _, domain = identity.email.rpartition("@")
    if local == "*":
        return domain_of(address) == domain.lower()
    return address.casefold() == identity.email.casefold()


def account_default(account: Account) -> str | None:
    return default_address(account.user.username, account.settings.mail_domain)


def identities(account: Account) -> dict[str, Identity]:
    """The account's Identities, the default made (or remade) first if it must be."""
    cache = account.cache
    address = account_default(account)
    default_id = derive_id("i", f"default\0{address}") if address else None
    stored = decode_all(cache.objects(IDENTITY), Identity)
    stale = [i for i, identity in stored.items() if not identity.mayDelete and i != default_id]
    if not stale and (default_id is None or default_id in stored):
        return stored
    with cache.transaction():
        # Again under the write lock: another request may have made it meanwhile.
        stored = decode_all(cache.objects(IDENTITY), Identity)
        for identity_id in [i for i, x in stored.items() if not x.mayDelete and i != default_id]:
            cache.remove_object(IDENTITY, identity_id)
            del stored[identity_id]
        if address and default_id and default_id not in stored:
            made = Identity(id=default_id, email=address, mayDelete=False)
            cache.put_object(IDENTITY, default_id, msgspec.json.encode(made))
            stored[default_id] = made
    return stored


def _state(account: Account) -> str:
    return account.cache.encode_state(account.cache.state(IDENTITY))


def identity_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(GetArgs, args)
    account = account_of(ctx)
    found = identities(account)  # a handful: the default one and what the user added
    return get_response(ctx, request, lambda ids: found, PROPERTIES, _state(account))


def identity_changes(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(ChangesArgs, args)
    account = account_of(ctx)
    identities(account)
    response, _ = changes_response(account.cache, IDENTITY, request, ctx.account_id)
    return response


def _text(value: Any, prop: str, *, one_line: bool = False) -> str:
    if not isinstance(value, str) or (one_line and ("\r" in value or "\n" in value)):
        what = "one line of text" if one_line else "a string"
        raise Refused("invalidProperties", f"{prop} must be {what}", [prop])
    return value


def _addresses(value: Any, prop: str) -> list[EmailAddress] | None:
    if value is None:
        return None
    try:
        addresses = msgspec.convert(value, list[EmailAddress])
    except msgspec.ValidationError as exc:
        raise Refused("invalidProperties", f"{prop} must be EmailAddress[]", [prop]) from exc
    for address in addresses:
        if not is_mailbox(address.email) or (address.name and "\n" in address.name):
            raise Refused("invalidProperties", f"{prop} has a bad address", [prop])
    return addresses


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """The settable properties of a create or an update, each of the right shape."""
    unknown = sorted(set(values) - SETTABLE)
    if unknown:
        raise Refused("invalidProperties", "unknown or server-set properties", unknown)
    checked: dict[str, Any] = {}
    for prop, value in values.items():
        if prop in ("replyTo", "bcc"):
            checked[prop] = _addresses(value, prop)
        elif prop == "email":
            if not is_mailbox(value):
                raise Refused("invalidProperties", "email must be an address", ["email"])
            checked[prop] = value
        else:
            checked[prop] = _text(value, prop, one_line=prop == "name")
    return checked


class IdentitySetter:
    def __init__(self, ctx: CallContext, request: SetArgs) -> None:
        self.ctx = ctx
        self.request = request
        self.account = account_of(ctx)
        self.cache = self.account.cache
        self.known = identities(self.account)

    def run(self) -> dict[str, Any]:
        old_state = _state(self.account)
        check_in_state(self.request.ifInState, old_state)
        results = apply_each(self.request, self._create, self._update, self._destroy)
        return {
            "accountId": self.ctx.account_id,
            "oldState": old_state,
            "newState": _state(self.account),
            **results,
        }

    def _store(self, identity: Identity) -> None:
        self.cache.put_object(IDENTITY, identity.id, msgspec.json.encode(identity))
        self.known[identity.id] = identity

    def _create(self, creation_id: str, obj: Any) -> dict[str, Any]:
        if "email" not in obj:
            raise Refused("invalidProperties", "an Identity needs an email", ["email"])
        values = _checked(obj)
        if not may_send_as(self.account, values["email"]):
            raise Refused("forbiddenFrom", f"this login may not send as {values['email']}")
        identity = Identity(id=derive_id("i", random_token(16)), **values)
        self._store(identity)
        self.ctx.created_ids[creation_id] = identity.id
        # The server-set properties, and the defaults of those the client left out.
        whole = msgspec.to_builtins(identity)
        return {key: value for key, value in whole.items() if obj.get(key) != value}

    def _update(self, identity_id: str, patch: Any) -> None:
        identity = self.known.get(identity_id)
        if identity is None:
            raise Refused("notFound", "no such Identity")
        current = msgspec.to_builtins(identity)
        wanted = patched(current, patch)
        changed = {key: value for key, value in wanted.items() if current.get(key) != value}
        if changed.keys() & IMMUTABLE:
            raise Refused("invalidProperties", "immutable", sorted(changed.keys() & IMMUTABLE))
        if changed:
            self._store(msgspec.structs.replace(identity, **_checked(changed)))

    def _destroy(self, identity_id: str) -> None:
        identity = self.known.get(identity_id)
        if identity is None:
            raise Refused("notFound", "no such Identity")
        if not identity.mayDelete:
            raise Refused("forbidden", "the default Identity cannot be destroyed")
        self.cache.remove_object(IDENTITY, identity_id)
        del self.known[identity_id]


def identity_set(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(SetArgs, args)
    ctx.check_max_objects(request.object_count(), "maxObjectsInSet")
    return IdentitySetter(ctx, request).run()
