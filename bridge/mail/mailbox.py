"""Mailbox/get, /changes, /query, /queryChanges (RFC 8621 §2) over the synced cache."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from bridge.jmap import CallContext, MethodError, decode_args
from bridge.jmap.standard import ChangesArgs, GetArgs, QueryArgs, QueryChangesArgs
from bridge.mail import names
from bridge.mail.account import Account
from bridge.mail.common import (
    ConditionTypes,
    account_of,
    changes_response,
    check_comparators,
    check_filter,
    filter_matches,
    query_changes_response,
    query_response,
    since_value,
)
from bridge.mail.gmail_folders import system_folder_names
from bridge.store.base import Store
from bridge.store.journal import MAILBOX
from bridge.store.records import MailboxRecord

PROPERTIES = (
    "id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails",
    "totalThreads", "unreadThreads", "myRights", "isSubscribed",
)  # fmt: skip
COUNT_PROPERTIES = ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]
SORT_PROPERTIES = frozenset({"sortOrder", "name"})

# RFC 4314 §2.1.1: the obsolete "c" and "d" rights stand for the ones that replaced them.
_LEGACY_RIGHTS = {"c": "k", "d": "xte"}


def _has_rights(rights: str | None, letters: str) -> bool:
    if rights is None:
        return True  # no ACL extension: the user owns every folder
    expanded = rights + "".join(_LEGACY_RIGHTS.get(ch, "") for ch in rights)
    return all(letter in expanded for letter in letters)


def rights_object(record: MailboxRecord, *, fixed: bool = False) -> dict[str, bool]:
    """MailboxRights from the IMAP ACL letters (RFC 8621 §2 names the letter for each);
    a ``fixed`` folder (INBOX, Gmail's system folders) cannot be renamed or deleted."""
    readable = record.selectable
    fixed = fixed or record.name.upper() == "INBOX"
    rights = record.rights
    return {
        "mayReadItems": readable and _has_rights(rights, "lr"),
        "mayAddItems": readable and _has_rights(rights, "i"),
        "mayRemoveItems": readable and _has_rights(rights, "te"),
        "maySetSeen": readable and _has_rights(rights, "s"),
        "maySetKeywords": readable and _has_rights(rights, "w"),
        "mayCreateChild": _has_rights(rights, "k"),
        "mayRename": not fixed and _has_rights(rights, "x"),
        "mayDelete": not fixed and _has_rights(rights, "x"),
        "maySubmit": readable and _has_rights(rights, "p") if rights is not None else readable,
    }


class MailboxTree:
    """The folder list as JMAP sees it: ids, parents and display names. ``fixed_names``:
    the folders the upstream will not rename or delete."""

    def __init__(
        self, records: Iterable[MailboxRecord], fixed_names: frozenset[str] = frozenset()
    ) -> None:
        self.records = {record.id: record for record in records}
        self.by_name = {record.name: record for record in self.records.values()}
        self.fixed_names = fixed_names

    @classmethod
    def of(cls, account: Account) -> MailboxTree:
        """The account's cached folders; on Gmail its system folders are fixed."""
        records = account.cache.mailboxes()
        gmail = account.on_gmail
        return cls(records, system_folder_names(records) if gmail else frozenset())

    def parent_id(self, record: MailboxRecord) -> str | None:
        parent_name = record.parent_name
        parent = self.by_name.get(parent_name) if parent_name is not None else None
        return parent.id if parent is not None else None

    def display_name(self, record: MailboxRecord) -> str:
        if self.parent_id(record) is None and record.parent_name is not None:
            # A folder whose parent the server does not list keeps its full path as its
            # name, delimiters and all.
            return record.name
        return names.to_jmap(record.leaf_name, record.delimiter)

    def children(self, mailbox_id: str) -> list[MailboxRecord]:
        return [r for r in self.records.values() if self.parent_id(r) == mailbox_id]

    def ancestors(self, record: MailboxRecord) -> list[str]:
        found: list[str] = []
        parent_id = self.parent_id(record)
        while parent_id is not None and parent_id not in found:
            found.append(parent_id)
            parent_id = self.parent_id(self.records[parent_id])
        return found

    def to_object(self, record: MailboxRecord) -> dict[str, Any]:
        return {
            "id": record.id,
            "name": self.display_name(record),
            "parentId": self.parent_id(record),
            "role": record.role,
            "sortOrder": record.sort_order,
            "totalEmails": record.counts.total_emails,
            "unreadEmails": record.counts.unread_emails,
            "totalThreads": record.counts.total_threads,
            "unreadThreads": record.counts.unread_threads,
            "myRights": rights_object(record, fixed=record.name in self.fixed_names),
            "isSubscribed": record.subscribed,
        }


def synced_tree(ctx: CallContext) -> tuple[Store, str, MailboxTree]:
    """The cache after the sync, the Mailbox state, and the folders. The state is read
    before the folders: a change committed in between (the watcher's, another instance's)
    is then in both or in the folders alone, which the next /changes repeats, never in the
    state alone, which would hide it from the client."""
    account = account_of(ctx)
    account.sync()
    state = account.cache.encode_state(account.cache.state(MAILBOX))
    return account.cache, state, MailboxTree.of(account)


def mailbox_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(GetArgs, args)
    properties = _properties(request.properties)
    if request.ids is not None:
        ctx.check_max_objects(len(request.ids), "maxObjectsInGet")
    _, state, tree = synced_tree(ctx)
    wanted = request.ids if request.ids is not None else list(tree.records)
    found: list[dict[str, Any]] = []
    not_found: list[str] = []
    for mailbox_id in dict.fromkeys(wanted):
        resolved = ctx.resolve_creation_id(mailbox_id) or mailbox_id
        record = tree.records.get(resolved)
        if record is None:
            not_found.append(mailbox_id)
            continue
        mailbox = tree.to_object(record)
        found.append({key: mailbox[key] for key in PROPERTIES if key in properties})
    return {"accountId": ctx.account_id, "state": state, "list": found, "notFound": not_found}


def _properties(requested: Sequence[str] | None) -> set[str]:
    if requested is None:
        return set(PROPERTIES)
    unknown = [name for name in requested if name not in PROPERTIES]
    if unknown:
        raise MethodError("invalidArguments", f"unknown properties: {', '.join(unknown)}")
    return {"id", *requested}


def mailbox_changes(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(ChangesArgs, args)
    account = account_of(ctx)
    account.sync()
    response, counts_only = changes_response(account.cache, MAILBOX, request, ctx.account_id)
    response["updatedProperties"] = COUNT_PROPERTIES if counts_only else None
    return response


class MailboxQueryArgs(QueryArgs, forbid_unknown_fields=True):
    sortAsTree: bool = False
    filterAsTree: bool = False


class MailboxQueryChangesArgs(QueryChangesArgs, forbid_unknown_fields=True):
    sortAsTree: bool = False
    filterAsTree: bool = False


def _string_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


FILTER_TYPES: ConditionTypes = {
    "parentId": (_string_or_null, "an id or null"),
    "name": (lambda v: isinstance(v, str), "a string"),
    "role": (_string_or_null, "a string or null"),
    "hasAnyRole": (lambda v: isinstance(v, bool), "a boolean"),
    "isSubscribed": (lambda v: isinstance(v, bool), "a boolean"),
}


def _check_filter(node: Any) -> None:
    check_filter(node, FILTER_TYPES)


def _holds(mailbox: dict[str, Any], node: dict[str, Any]) -> bool:
    """One FilterCondition of a /query filter."""
    if "parentId" in node and mailbox["parentId"] != node["parentId"]:
        return False
    if "name" in node and node["name"].casefold() not in mailbox["name"].casefold():
        return False
    if "role" in node and mailbox["role"] != node["role"]:
        return False
    if "hasAnyRole" in node and (mailbox["role"] is not None) != node["hasAnyRole"]:
        return False
    return not ("isSubscribed" in node and mailbox["isSubscribed"] != node["isSubscribed"])


def _sort_key(comparators: list[dict[str, Any]]) -> Any:
    """A key for sorted(): each comparator in turn, then name and id for a stable order."""

    class Key:
        __slots__ = ("mailbox",)

        def __init__(self, mailbox: dict[str, Any]) -> None:
            self.mailbox = mailbox

        def __lt__(self, other: Key) -> bool:
            for comparator in comparators:
                prop = comparator["property"]
                mine, theirs = self.mailbox[prop], other.mailbox[prop]
                if prop == "name":
                    mine, theirs = mine.casefold(), theirs.casefold()
                if mine != theirs:
                    return (mine < theirs) == comparator.get("isAscending", True)
            a, b = self.mailbox, other.mailbox
            return (a["sortOrder"], a["name"].casefold(), a["id"]) < (
                b["sortOrder"], b["name"].casefold(), b["id"],
            )  # fmt: skip

    return Key


def _check_sort(sort: Any) -> list[dict[str, Any]]:
    return check_comparators(sort, SORT_PROPERTIES)


def query_ids(
    tree: MailboxTree,
    filter_: dict[str, Any] | None,
    sort: list[dict[str, Any]],
    sort_as_tree: bool,
    filter_as_tree: bool,
) -> list[str]:
    objects = {mailbox_id: tree.to_object(r) for mailbox_id, r in tree.records.items()}
    matching = {
        mid for mid, mailbox in objects.items() if filter_matches(filter_, partial(_holds, mailbox))
    }
    if filter_as_tree:
        matching = {
            mid for mid in matching
            if all(a in matching for a in tree.ancestors(tree.records[mid]))
        }  # fmt: skip
    key = _sort_key(sort)
    ordered = sorted((objects[mid] for mid in matching), key=key)
    if not sort_as_tree:
        return [mailbox["id"] for mailbox in ordered]
    by_parent: dict[str | None, list[str]] = {}
    for mailbox in ordered:
        parent = mailbox["parentId"] if mailbox["parentId"] in matching else None
        by_parent.setdefault(parent, []).append(mailbox["id"])
    result: list[str] = []

    def walk(parent: str | None) -> None:
        for mailbox_id in by_parent.get(parent, []):
            result.append(mailbox_id)
            walk(mailbox_id)

    walk(None)
    return result


def mailbox_query(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(MailboxQueryArgs, args)
    _check_filter(request.filter)
    sort = _check_sort(request.sort)
    _, state, tree = synced_tree(ctx)
    ids = query_ids(tree, request.filter, sort, request.sortAsTree, request.filterAsTree)
    return query_response(ctx.account_id, state, ids, request)


def mailbox_query_changes(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(MailboxQueryChangesArgs, args)
    _check_filter(request.filter)
    sort = _check_sort(request.sort)
    cache, state, tree = synced_tree(ctx)
    since = since_value(cache, MAILBOX, request.sinceQueryState)
    changed = cache.changed_since(MAILBOX, since, properties_only=True)
    ids = query_ids(tree, request.filter, sort, request.sortAsTree, request.filterAsTree)
    return query_changes_response(
        ctx.account_id, request.sinceQueryState, state,
        ids, changed, request.maxChanges, request.calculateTotal,
    )  # fmt: skip
