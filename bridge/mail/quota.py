"""Quota/get, /changes, /query and /queryChanges (RFC 9425), from the upstream's QUOTA.

Nothing is cached: every call asks the upstream (GETQUOTAROOT INBOX), whose STORAGE and
MESSAGE resources become an "octets" and a "count" Quota of each root. The state is a hash
of the values, so it changes exactly when a Quota does; since old values are not kept, a
/changes or /queryChanges from any other state answers cannotCalculateChanges (the client
then refetches, which is two small objects).
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Any

import msgspec

from bridge.imap.models import QuotaRoot
from bridge.jmap import CallContext, MethodError, decode_args
from bridge.jmap.standard import (
    ChangesArgs,
    GetArgs,
    QueryArgs,
    QueryChangesArgs,
    get_properties,
)
from bridge.mail.capabilities import MAIL
from bridge.mail.common import account_of, check_filter, filter_matches, query_response
from bridge.store.ids import derive_id

PROPERTIES = (
    "id", "resourceType", "used", "warnLimit", "softLimit", "hardLimit", "scope", "name",
    "types", "description",
)  # fmt: skip
FILTER_PROPERTIES = {"name", "scope", "resourceType", "type"}
SORT_PROPERTIES = {"name", "used"}
# The mailbox whose quota roots are the account's: every server has an INBOX.
QUOTA_MAILBOX = "INBOX"
DEFAULT_NAME = "User quota"
# IMAP resource -> (JMAP resourceType, factor to its unit). STORAGE is in KiB (RFC 9208).
RESOURCES = {"STORAGE": ("octets", 1024), "MESSAGE": ("count", 1)}


def quota_objects(roots: list[QuotaRoot]) -> list[dict[str, Any]]:
    """The Quota objects of these roots, in a stable order (by id)."""
    quotas: dict[str, dict[str, Any]] = {}
    for root in roots:
        for resource in root.resources:
            mapped = RESOURCES.get(resource.name.upper())
            if mapped is None:
                continue
            resource_type, factor = mapped
            quota_id = derive_id("q", f"{root.name}\0{resource_type}")
            quotas[quota_id] = {
                "id": quota_id,
                "resourceType": resource_type,
                "used": resource.usage * factor,
                "warnLimit": None,
                "softLimit": None,
                "hardLimit": resource.limit * factor,
                "scope": "account",
                "name": root.name or DEFAULT_NAME,
                "types": ["Mail"],
                "description": None,
            }
    return [quotas[key] for key in sorted(quotas)]


def state_of(quotas: list[dict[str, Any]]) -> str:
    encoded = msgspec.json.encode(quotas, order="sorted")
    return hashlib.sha256(encoded).hexdigest()[:16]


def _current(ctx: CallContext) -> tuple[list[dict[str, Any]], str]:
    """The account's Quotas and their state. A Quota applies to Mail only: a client that
    did not ask for the mail capability recognises none of its types, so it sees none
    (RFC 9425 §3.2)."""
    roots = account_of(ctx).imap.quota_roots(QUOTA_MAILBOX)
    quotas = quota_objects(roots)
    state = state_of(quotas)
    if MAIL not in ctx.using:
        quotas = []
    return quotas, state


def quota_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(GetArgs, args)
    wanted = get_properties(request.properties, PROPERTIES)
    if request.ids is not None:
        ctx.check_max_objects(len(request.ids), "maxObjectsInGet")
    quotas, state = _current(ctx)
    by_id = {quota["id"]: quota for quota in quotas}
    ids = list(by_id) if request.ids is None else list(dict.fromkeys(request.ids))
    return {
        "accountId": ctx.account_id,
        "state": state,
        "list": [
            {key: value for key, value in by_id[i].items() if key in wanted}
            for i in ids
            if i in by_id
        ],
        "notFound": [i for i in ids if i not in by_id],
    }


def quota_changes(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(ChangesArgs, args)
    _, state = _current(ctx)
    if request.sinceState != state:
        raise MethodError("cannotCalculateChanges", "quotas changed since that state; refetch")
    return {
        "accountId": ctx.account_id,
        "oldState": state,
        "newState": state,
        "hasMoreChanges": False,
        "created": [],
        "updated": [],
        "destroyed": [],
        "updatedProperties": None,
    }


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _check_filter(node: Any) -> None:
    check_filter(node, {key: (_is_string, "a string") for key in FILTER_PROPERTIES})


def _holds(quota: dict[str, Any], node: dict[str, Any]) -> bool:
    """One FilterCondition of a /query filter."""
    if "name" in node and node["name"].casefold() not in quota["name"].casefold():
        return False
    if "scope" in node and quota["scope"] != node["scope"]:
        return False
    if "resourceType" in node and quota["resourceType"] != node["resourceType"]:
        return False
    return not ("type" in node and node["type"] not in quota["types"])


def _check_sort(sort: Any) -> list[dict[str, Any]]:
    if sort is None:
        return []
    for comparator in sort:
        if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str):
            raise MethodError("invalidArguments", "a Comparator needs a property")
        if comparator["property"] not in SORT_PROPERTIES:
            raise MethodError("unsupportedSort", f"cannot sort by {comparator['property']}")
        if not isinstance(comparator.get("isAscending", True), bool):
            raise MethodError("invalidArguments", "isAscending must be a boolean")
    return sort


def _query_ids(
    quotas: list[dict[str, Any]], node: dict[str, Any] | None, sort: list[dict[str, Any]]
) -> list[str]:
    found = sorted(
        (q for q in quotas if filter_matches(node, partial(_holds, q))), key=lambda q: q["id"]
    )
    # Stable sorts, last comparator first; ties keep the id order.
    for comparator in reversed(sort):
        prop = comparator["property"]
        found.sort(
            key=lambda q, prop=prop: q[prop].casefold() if prop == "name" else q[prop],
            reverse=not comparator.get("isAscending", True),
        )
    return [quota["id"] for quota in found]


def quota_query(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(QueryArgs, args)
    _check_filter(request.filter)
    sort = _check_sort(request.sort)
    quotas, state = _current(ctx)
    ids = _query_ids(quotas, request.filter, sort)
    # The state moves with the values: canCalculateChanges holds from this state only.
    return query_response(ctx.account_id, state, ids, request)


def quota_query_changes(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(QueryChangesArgs, args)
    _check_filter(request.filter)
    sort = _check_sort(request.sort)
    quotas, state = _current(ctx)
    if request.sinceQueryState != state:
        raise MethodError("cannotCalculateChanges", "quotas changed since that state; requery")
    response: dict[str, Any] = {
        "accountId": ctx.account_id,
        "oldQueryState": state,
        "newQueryState": state,
        "removed": [],
        "added": [],
    }
    if request.calculateTotal:
        response["total"] = len(_query_ids(quotas, request.filter, sort))
    return response
