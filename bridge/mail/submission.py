"""EmailSubmission/get, /changes, /query and /queryChanges (RFC 8621 §7).

The upstream keeps no record of what was sent, so bridge keeps its own in the user's
cache: one EmailSubmission per message it handed to the submission server. Sending is
immediate and cannot be recalled, so every record is final from the start: undoStatus
"final", deliveryStatus from the SMTP replies, and no DSN or MDN blobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgspec

from bridge.jmap import CallContext, decode_args
from bridge.jmap.standard import ChangesArgs, GetArgs, QueryArgs, QueryChangesArgs
from bridge.mail.account import Account
from bridge.mail.common import (
    account_of,
    changes_response,
    check_comparators,
    check_filter,
    filter_matches,
    query_changes_response,
    query_response,
    since_value,
)
from bridge.mail.stored import decode_all, get_response
from bridge.mime.dates import parse_utc_date
from bridge.store.journal import EMAIL_SUBMISSION


class Address(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: str
    parameters: dict[str, str | None] | None = None


class Envelope(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mailFrom: Address
    rcptTo: list[Address]


class DeliveryStatus(msgspec.Struct, kw_only=True):
    smtpReply: str
    delivered: str
    displayed: str = "unknown"


class EmailSubmission(msgspec.Struct, kw_only=True):
    id: str
    identityId: str
    emailId: str
    threadId: str
    envelope: Envelope | None
    sendAt: str
    undoStatus: str = "final"
    deliveryStatus: dict[str, DeliveryStatus] | None = None
    dsnBlobIds: list[str] = msgspec.field(default_factory=list)
    mdnBlobIds: list[str] = msgspec.field(default_factory=list)


PROPERTIES = EmailSubmission.__struct_fields__
# RFC 8621 §7.3 names the sendAt sort "sentAt"; the property's own name is taken too.
SORTS = {"emailId": "emailId", "threadId": "threadId", "sentAt": "sendAt", "sendAt": "sendAt"}


def _utc_date(value: Any) -> datetime | None:
    return parse_utc_date(value) if isinstance(value, str) else None


def submissions(account: Account, ids: Sequence[str] | None = None) -> dict[str, EmailSubmission]:
    """The user's submissions, all or those of ``ids`` (the record grows with every send:
    read only what a call names)."""
    return decode_all(account.cache.objects(EMAIL_SUBMISSION, ids), EmailSubmission)


def state_of(account: Account) -> str:
    return account.cache.encode_state(account.cache.state(EMAIL_SUBMISSION))


def submission_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(GetArgs, args)
    account = account_of(ctx)
    load = partial(submissions, account)
    return get_response(ctx, request, load, PROPERTIES, state_of(account))


def submission_changes(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(ChangesArgs, args)
    account = account_of(ctx)
    response, _ = changes_response(account.cache, EMAIL_SUBMISSION, request, ctx.account_id)
    return response


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_CONDITIONS = {
    "identityIds": (_is_ids, "a list of ids"),
    "emailIds": (_is_ids, "a list of ids"),
    "threadIds": (_is_ids, "a list of ids"),
    "undoStatus": (lambda value: isinstance(value, str), "a string"),
    "before": (lambda value: _utc_date(value) is not None, "a UTCDate"),
    "after": (lambda value: _utc_date(value) is not None, "a UTCDate"),
}


def _holds(submission: EmailSubmission, node: dict[str, Any]) -> bool:
    """One FilterCondition of a /query filter."""
    for key, prop in (("identityIds", "identityId"), ("emailIds", "emailId"),
                      ("threadIds", "threadId")):  # fmt: skip
        if key in node and getattr(submission, prop) not in node[key]:
            return False
    if "undoStatus" in node and submission.undoStatus != node["undoStatus"]:
        return False
    # The filter was checked: a date given is a UTCDate.
    sent = _utc_date(submission.sendAt) or datetime.min.replace(tzinfo=UTC)
    before, after = _utc_date(node.get("before")), _utc_date(node.get("after"))
    if before is not None and sent >= before:
        return False
    return after is None or sent >= after


def _query_ids(account: Account, node: dict[str, Any] | None, sort: Any) -> list[str]:
    comparators = check_comparators(sort, SORTS)
    found = sorted(
        (s for s in submissions(account).values() if filter_matches(node, partial(_holds, s))),
        key=lambda s: (s.sendAt, s.id),
    )
    # Stable sorts, last comparator first; ties keep the order of sending.
    for comparator in reversed(comparators):
        prop = SORTS[comparator["property"]]
        found.sort(
            key=lambda s, prop=prop: getattr(s, prop),
            reverse=not comparator.get("isAscending", True),
        )
    return [s.id for s in found]


def submission_query(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(QueryArgs, args)
    check_filter(request.filter, _CONDITIONS)
    account = account_of(ctx)
    ids = _query_ids(account, request.filter, request.sort)
    return query_response(ctx.account_id, state_of(account), ids, request)


def submission_query_changes(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(QueryChangesArgs, args)
    check_filter(request.filter, _CONDITIONS)
    account = account_of(ctx)
    since = since_value(account.cache, EMAIL_SUBMISSION, request.sinceQueryState)
    ids = _query_ids(account, request.filter, request.sort)
    changed = account.cache.changed_since(EMAIL_SUBMISSION, since)
    return query_changes_response(
        ctx.account_id,
        request.sinceQueryState,
        state_of(account),
        ids,
        changed,
        request.maxChanges,
        request.calculateTotal,
    )
