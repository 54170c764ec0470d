"""Mailbox/set (RFC 8621 §2.5): CREATE, RENAME, SUBSCRIBE and DELETE upstream.

Creates run first, then updates, then destroys (RFC 8620 §5.3). Nothing is reported done
that the upstream did not confirm: if the connection drops half way, the call fails with
serverPartialFail once anything has changed, so the client knows to resync.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Iterator
from typing import Any

import msgspec

from bridge.imap.errors import CommandFailed, UpstreamUnavailable
from bridge.jmap import CallContext, MethodError, decode_args
from bridge.jmap.standard import SetArgs, check_in_state
from bridge.mail import names
from bridge.mail.account import Account
from bridge.mail.common import account_of
from bridge.mail.mailbox import MailboxTree
from bridge.mail.roles import name_role
from bridge.mail.setting import Refused, apply_each, patched
from bridge.store.journal import MAILBOX
from bridge.store.records import MailboxRecord

SETTABLE = frozenset({"name", "parentId", "role", "sortOrder", "isSubscribed"})
MAX_NAME = 255
MAX_SORT_ORDER = 2**31
# Response codes of a refused CREATE or RENAME that blame something other than the name
# (RFC 5530): these keep their usual SetError (forbidden, overQuota).
NOT_ABOUT_THE_NAME = frozenset(
    {"NOPERM", "OVERQUOTA", "UNAVAILABLE", "SERVERBUG", "INUSE", "CONTACTADMIN", "LIMIT"}
)


class MailboxSetArgs(SetArgs, forbid_unknown_fields=True):
    onDestroyRemoveEmails: bool = False


def _check_name(name: Any, delimiter: str | None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise Refused("invalidProperties", "name must be a non-empty string", ["name"])
    if len(name) > MAX_NAME:
        raise Refused("invalidProperties", "name is too long", ["name"])
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise Refused("invalidProperties", "name has control characters", ["name"])
    alike = names.stand_in(delimiter)
    if alike and alike in name:
        # It stands for the delimiter: taking it as itself would make names ambiguous.
        raise Refused(
            "invalidProperties", f"name may not contain {alike!r} (it stands for {delimiter!r})",
            ["name"],
        )  # fmt: skip
    if delimiter and not alike and delimiter in name:
        raise Refused("invalidProperties", f"name may not contain {delimiter!r}", ["name"])
    return names.to_imap(unicodedata.normalize("NFC", name), delimiter)


@contextlib.contextmanager
def _name_refusals() -> Iterator[None]:
    """A CREATE or RENAME the upstream refused is about the name (a character its storage
    does not allow, a length, a clash) unless the response code says otherwise: then the
    client hears invalidProperties on ``name``, with the upstream's reason."""
    try:
        yield
    except CommandFailed as exc:
        if exc.code in NOT_ABOUT_THE_NAME:
            raise
        if exc.code == "ALREADYEXISTS":
            raise Refused("invalidProperties", "a mailbox with this name exists", ["name"]) from exc
        reason = exc.text or exc.code or exc.status
        raise Refused(
            "invalidProperties", f"the upstream refused the name: {reason}", ["name"]
        ) from exc


class MailboxSetter:
    def __init__(self, ctx: CallContext, request: MailboxSetArgs) -> None:
        self.ctx = ctx
        self.request = request
        self.account: Account = account_of(ctx)
        self.cache = self.account.cache
        self.tree = MailboxTree(())  # built in run, after the sync
        self.changed_upstream = False

    @property
    def delimiter(self) -> str:
        return self.account.imap.delimiter

    def _refresh(self) -> None:
        self.account.sync_list()
        self.tree = MailboxTree.of(self.account)

    def _resolve(self, mailbox_id: Any) -> MailboxRecord | None:
        if not isinstance(mailbox_id, str):
            return None
        real = self.ctx.resolve_creation_id(mailbox_id) if mailbox_id.startswith("#") else None
        return self.tree.records.get(real or mailbox_id)

    def _full_name(self, name: str, parent_id: Any, moving: MailboxRecord | None = None) -> str:
        if parent_id is None:
            return name
        parent = self._resolve(parent_id)
        if parent is None:
            raise Refused("invalidProperties", "parentId does not exist", ["parentId"])
        if moving is not None and (
            parent.id == moving.id or moving.id in self.tree.ancestors(parent)
        ):
            raise Refused("invalidProperties", "a mailbox cannot be its own ancestor", ["parentId"])
        return f"{parent.name}{self.delimiter}{name}"

    def _check_unique(self, full_name: str, exclude: str | None = None) -> None:
        clash = self.tree.by_name.get(full_name)
        if clash is not None and clash.id != exclude:
            raise Refused("invalidProperties", "a sibling has this name", ["name"])

    # -- the three phases ---------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.account.sync(writing=True)
        self.tree = MailboxTree.of(self.account)
        old_state = self.cache.encode_state(self.cache.state(MAILBOX))
        check_in_state(self.request.ifInState, old_state)
        try:
            with self.account.user.syncing():  # no watcher starts its NOTIFY meanwhile
                results = apply_each(self.request, self._create, self._update, self._destroy)
        except UpstreamUnavailable as exc:
            if self.changed_upstream:
                raise MethodError(
                    "serverPartialFail", "the upstream went away part way; resync mailboxes"
                ) from exc
            raise
        if self.changed_upstream:
            self.account.sync_after_writes()
        response: dict[str, Any] = {
            "accountId": self.ctx.account_id,
            "oldState": old_state,
            "newState": self.cache.encode_state(self.cache.state(MAILBOX)),
            **results,
        }
        return response

    def _create(self, creation_id: str, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise Refused("invalidProperties", "a Mailbox must be an object")
        invalid = sorted(set(obj) - SETTABLE)
        if invalid:
            raise Refused("invalidProperties", "not settable on create", invalid)
        name = _check_name(obj.get("name"), self.delimiter)
        full_name = self._full_name(name, obj.get("parentId"))
        self._check_unique(full_name)
        sort_order = obj.get("sortOrder", 0)
        if not isinstance(sort_order, int) or not 0 <= sort_order < MAX_SORT_ORDER:
            raise Refused("invalidProperties", "sortOrder out of range", ["sortOrder"])
        subscribe = obj.get("isSubscribed", True)
        if not isinstance(subscribe, bool):
            raise Refused("invalidProperties", "isSubscribed must be a boolean", ["isSubscribed"])
        special_use = self._special_use(obj.get("role"), full_name)
        imap = self.account.imap
        self.changed_upstream = True  # before: a CREATE without an answer may have run
        with _name_refusals():
            imap.create(full_name, special_use=special_use)
        if subscribe:
            imap.subscribe(full_name)
        self._refresh()
        record = self.tree.by_name.get(full_name)
        if record is None:
            raise Refused("forbidden", "the upstream did not list the new mailbox")
        if sort_order:
            with self.cache.transaction():
                self.cache.set_sort_order(record.id, sort_order)
        self.ctx.created_ids[creation_id] = record.id
        shown = self.tree.to_object(record)
        return {
            "id": record.id,
            "role": record.role,
            "totalEmails": 0, "unreadEmails": 0, "totalThreads": 0, "unreadThreads": 0,
            "myRights": shown["myRights"],
            "isSubscribed": subscribe,
            "sortOrder": sort_order,
        }  # fmt: skip

    def _special_use(self, role: Any, full_name: str) -> str | None:
        """The SPECIAL-USE attribute to CREATE with; None where there is no role, or where
        the folder's name alone gives it the role (roles.py) on an upstream that cannot
        take the attribute."""
        if role is None:
            return None
        if not isinstance(role, str) or role != role.lower() or not role.isalpha():
            raise Refused("invalidProperties", "role must be a lower-case attribute", ["role"])
        if any(record.role == role for record in self.tree.records.values()):
            raise Refused("invalidProperties", f"another mailbox has role {role}", ["role"])
        if self.account.imap.has("CREATE-SPECIAL-USE"):
            return "\\" + role.capitalize()
        by_name = name_role(full_name, self.delimiter)
        if by_name is None or by_name[0] != role:
            raise Refused(
                "invalidProperties", "the upstream cannot assign roles but by name", ["role"]
            )
        return None

    def _update(self, mailbox_id: str, patch: Any) -> None:
        record = self._resolve(mailbox_id)
        if record is None:
            raise Refused("notFound", "no such mailbox")
        if not isinstance(patch, dict):
            raise Refused("invalidPatch", "an update must be a PatchObject")
        current = self.tree.to_object(record)
        wanted = patched(current, patch)
        changed = {key for key in wanted if wanted.get(key) != current.get(key)}
        changed |= set(wanted) - set(current)
        refused = sorted(changed - SETTABLE - {"myRights"}) + (
            ["myRights"] if "myRights" in changed else []
        )
        if refused:
            raise Refused("invalidProperties", "server-set properties", refused)
        if "role" in changed:
            raise Refused("invalidProperties", "the upstream cannot change roles", ["role"])
        imap = self.account.imap
        name = record.name
        if "name" in changed or "parentId" in changed:
            if record.name.upper() == "INBOX":
                raise Refused("forbidden", "INBOX cannot be renamed")
            if record.name in self.tree.fixed_names:
                # Gmail refuses it: refused here, before anything is sent.
                raise Refused("forbidden", "Gmail's system folders cannot be renamed or moved")
            leaf = _check_name(wanted["name"], self.delimiter)
            name = self._full_name(leaf, wanted["parentId"], moving=record)
            self._check_unique(name, exclude=record.id)
        if "sortOrder" in changed:
            order = wanted["sortOrder"]
            if not isinstance(order, int) or not 0 <= order < MAX_SORT_ORDER:
                raise Refused("invalidProperties", "sortOrder out of range", ["sortOrder"])
        if "isSubscribed" in changed and not isinstance(wanted["isSubscribed"], bool):
            raise Refused("invalidProperties", "isSubscribed must be a boolean", ["isSubscribed"])
        if name != record.name:
            self.changed_upstream = True
            with _name_refusals():
                self.account.release_second()  # which may have it open
                imap.rename(record.name, name)
            self._renamed_in_cache(record, name)
            if record.subscribed:
                imap.unsubscribe(record.name)
                imap.subscribe(name)
        if "isSubscribed" in changed:
            self.changed_upstream = True
            (imap.subscribe if wanted["isSubscribed"] else imap.unsubscribe)(name)
        if "sortOrder" in changed:
            with self.cache.transaction():
                self.cache.set_sort_order(record.id, wanted["sortOrder"])
        if name != record.name:
            self._refresh()
        return None

    def _renamed_in_cache(self, record: MailboxRecord, name: str) -> None:
        """The server confirmed the RENAME: the folder and its children keep their ids
        under their new names (a server without folder ids shows only a name that went
        and one that came)."""
        inside = record.name + self.delimiter if self.delimiter else None
        with self.cache.transaction():
            for each in self.tree.records.values():
                if each.id == record.id:
                    new_name = name
                elif inside and each.name.startswith(inside):
                    new_name = name + each.name[len(record.name) :]
                else:
                    continue
                self.cache.update_mailbox(each, msgspec.structs.replace(each, name=new_name))

    def _has_mail_now(self, record: MailboxRecord) -> bool:
        """Asked right before a DELETE that must not take mail: the cache's count may
        predate mail another client has just put there (a request may run on a cache a
        watcher vouched for while the news is on its way: bridge.mail.freshness)."""
        try:
            return self.account.imap.status(record.name).messages > 0
        except CommandFailed:
            return False  # a folder this user cannot read: the DELETE decides, as before

    def _destroy(self, mailbox_id: str) -> None:
        record = self._resolve(mailbox_id)
        if record is None:
            raise Refused("notFound", "no such mailbox")
        if record.name.upper() == "INBOX":
            raise Refused("forbidden", "INBOX cannot be destroyed")
        if record.name in self.tree.fixed_names:
            raise Refused("forbidden", "Gmail's system folders cannot be destroyed")
        if self.tree.children(record.id):
            raise Refused("mailboxHasChild", "the mailbox has child mailboxes")
        has_mail = record.counts.total_emails > 0 or (
            record.status is not None and record.status.messages > 0
        )
        if not self.request.onDestroyRemoveEmails and (has_mail or self._has_mail_now(record)):
            raise Refused("mailboxHasEmail", "the mailbox is not empty")
        imap = self.account.imap
        self.changed_upstream = True
        self.account.release_second()  # which may have it open
        imap.delete(record.name)
        if record.subscribed:
            # Some servers drop the subscription with the folder, and refuse this.
            with contextlib.suppress(CommandFailed):
                imap.unsubscribe(record.name)
        self._refresh()
        return None


def mailbox_set(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(MailboxSetArgs, args)
    ctx.check_max_objects(request.object_count(), "maxObjectsInSet")
    return MailboxSetter(ctx, request).run()
