"""Email/get and Email/changes (RFC 8621 §4.2, §4.3).

An Email is put together from three sources, each fetched only when a requested property
needs it: the cache (ids, mailboxes, keywords, size, dates), a summary parsed once per
message and kept in the cache (the list-view headers, preview, hasAttachment: from
BODY.PEEK[HEADER], BODYSTRUCTURE and PREVIEW), and the whole message for body properties
(read one message at a time, a large one through a spool file: ``bridge.mail.messages``).
A warm list view therefore costs no IMAP command beyond the sync check.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from bridge.jmap import CallContext, MethodError, decode_args
from bridge.jmap.standard import ChangesArgs, GetArgs, UnsignedInt
from bridge.mail.account import Account
from bridge.mail.blobs import blob_id
from bridge.mail.common import account_of, changes_response
from bridge.mail.messages import fetch_by_folder, parsed_messages
from bridge.mail.sort_keys import keys_from_summary
from bridge.mail.summary import (
    SUMMARY_ITEMS,
    decoded_summary,
    encode_summary,
    has_summary_items,
    summary_from_fetch,
    summary_from_message,
)
from bridge.mime import (
    BODY_PART_PROPERTIES,
    CONVENIENCE_HEADERS,
    ParsedMessage,
    email_properties,
    parse_header_property,
)
from bridge.mime.email_object import BodyValuesTooLarge, ValueBudget
from bridge.store.journal import EMAIL
from bridge.store.records import EmailRecord

METADATA = ("id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt")
SUMMARY = (*CONVENIENCE_HEADERS, "hasAttachment", "preview")
BODY = ("bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments", "headers")
PROPERTIES = frozenset({*METADATA, *SUMMARY, *BODY})
# RFC 8621 §4.2: what a request without "properties" gets.
DEFAULT_PROPERTIES = (
    *METADATA, *CONVENIENCE_HEADERS, "hasAttachment", "preview", "bodyValues", "textBody",
    "htmlBody", "attachments",
)  # fmt: skip


class EmailGetArgs(GetArgs, forbid_unknown_fields=True):
    bodyProperties: list[str] | None = None
    fetchTextBodyValues: bool = False
    fetchHTMLBodyValues: bool = False
    fetchAllBodyValues: bool = False
    maxBodyValueBytes: UnsignedInt = 0


@functools.lru_cache(maxsize=4096)
def utc_date(timestamp: int) -> str:
    # time.gmtime: a list view formats one per Email, and a datetime costs twice as much;
    # remembered, since the same page is formatted again at every request.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _check_properties(requested: Sequence[str], allowed: Iterable[str], what: str) -> None:
    allowed = set(allowed)
    bad = [p for p in requested if p not in allowed and not _is_header_property(p)]
    if bad:
        raise MethodError("invalidArguments", f"unknown {what}: {', '.join(bad)}")


def _is_header_property(name: str) -> bool:
    return name.startswith("header:") and parse_header_property(name) is not None


# What the cache's Email row answers by itself (a list view asks for most of these).
_FROM_RECORD: dict[str, Callable[[EmailRecord], Any]] = {
    "id": lambda record: record.id,
    "blobId": lambda record: blob_id(record.id),
    "threadId": lambda record: record.thread_id,
    "mailboxIds": lambda record: dict.fromkeys(record.mailbox_ids, True),
    "keywords": lambda record: dict.fromkeys(sorted(record.keywords), True),
    "size": lambda record: record.size,
    "receivedAt": lambda record: utc_date(record.received_at),
}


def load_summaries(account: Account, records: dict[str, EmailRecord]) -> dict[str, dict]:
    """The list-view facts of each Email, parsed once and then kept in the cache."""
    summaries = {
        email_id: decoded_summary(record.summary)
        for email_id, record in records.items()
        if record.summary is not None
    }
    missing = [email_id for email_id in records if email_id not in summaries]
    if not missing:
        return summaries

    def previewed() -> dict[str, dict[str, Any]]:
        fetched = fetch_by_folder(account, missing, SUMMARY_ITEMS)
        return {e: summary_from_fetch(raw) for e, raw in fetched.items() if has_summary_items(raw)}

    def parsed(email_ids: list[str]) -> dict[str, dict[str, Any]]:
        wanted = {email_id: records[email_id] for email_id in email_ids}
        return {
            email_id: summary_from_message(message, email_id)
            for email_id, message in parsed_messages(account, wanted)
        }

    fresh = account.imap.with_extension(
        "PREVIEW", previewed, lambda: parsed(missing), no_refuses=True
    )
    # Without a preview from the server (no PREVIEW, or PREVIEW NIL) it needs the text
    # itself: parse the whole message.
    unread = [email_id for email_id in missing if email_id not in fresh]
    if unread:
        fresh.update(parsed(unread))
    # Not the cross-folder sort keys: few Emails are ever sorted across folders by a
    # header, and the query that does makes them from these summaries (header_sort).
    account.cache.set_summaries({e: encode_summary(s) for e, s in fresh.items()})
    summaries.update(fresh)
    return summaries


class BodyArgs(Protocol):
    """What Email/get and Email/parse share of their arguments (RFC 8621 §4.2, §4.9)."""

    bodyProperties: list[str] | None
    fetchTextBodyValues: bool
    fetchHTMLBodyValues: bool
    fetchAllBodyValues: bool
    maxBodyValueBytes: int


def render(
    ctx: CallContext,
    request: BodyArgs,
    message: ParsedMessage,
    properties: Sequence[str],
    blob_id_for: Callable[[str], str],
    budget: ValueBudget,
) -> dict[str, Any]:
    """The Email properties of one parsed message, as Email/get and Email/parse answer
    them; body values past the call's budget are the limit Blob/get has."""
    try:
        return email_properties(
            message,
            properties,
            blob_id_for=blob_id_for,
            body_properties=request.bodyProperties,
            fetch_text=request.fetchTextBodyValues,
            fetch_html=request.fetchHTMLBodyValues,
            fetch_all=request.fetchAllBodyValues,
            max_body_value_bytes=request.maxBodyValueBytes,
            value_budget=budget,
        )
    except BodyValuesTooLarge:
        raise MethodError(
            "requestTooLarge",
            f"the body values asked for are larger than maxSizeUpload ({ctx.limits.max_size_upload}"
            " octets): ask with maxBodyValueBytes or for fewer Emails",
        ) from None


def has_attachment_of(account: Account, email_ids: set[str]) -> dict[str, bool]:
    """From the summaries; kept with the sort keys, so that Email/query asks only once."""
    records = account.cache.emails(list(email_ids))
    summaries = load_summaries(account, records)
    account.cache.set_sort_keys({e: keys_from_summary(s) for e, s in summaries.items()})
    return {e: bool(s.get("hasAttachment")) for e, s in summaries.items()}


def email_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(EmailGetArgs, args)
    properties = list(DEFAULT_PROPERTIES if request.properties is None else request.properties)
    _check_properties(properties, PROPERTIES, "properties")
    if request.bodyProperties is not None:
        _check_properties(request.bodyProperties, BODY_PART_PROPERTIES, "bodyProperties")
    account = account_of(ctx)
    account.sync()
    # Before the Emails are read (see bridge.mail.mailbox.synced_tree).
    state = account.cache.encode_state(account.cache.state(EMAIL))
    ids = request.ids
    if ids is None:
        ids = [e for e, *_ in account.cache.email_facts()]
    ctx.check_max_objects(len(ids), "maxObjectsInGet")
    wanted = [ctx.resolve_creation_id(i) or i for i in dict.fromkeys(ids)]
    records = account.cache.emails(wanted)
    content_props = [p for p in properties if p in BODY or p.startswith("header:")]
    summaries: dict[str, dict[str, Any]] = {}
    if any(p in SUMMARY for p in properties):
        summaries = load_summaries(account, records)
    contents: dict[str, dict[str, Any]] = {}
    if content_props:
        budget = ValueBudget(ctx.limits.max_size_upload)
        header_only = all(p == "headers" or p.startswith("header:") for p in content_props)
        for email_id, message in parsed_messages(account, records, header_only=header_only):
            contents[email_id] = render(
                ctx,
                request,
                message,
                content_props,
                lambda part, email_id=email_id: blob_id(email_id, part),
                budget,
            )
    found = []
    sources = [(key, _FROM_RECORD.get(key)) for key in properties]
    for email_id in wanted:
        record = records.get(email_id)
        if record is None or (content_props and email_id not in contents):
            continue  # gone upstream since the last sync
        summary, content = summaries.get(email_id, {}), contents.get(email_id, {})
        email: dict[str, Any] = {"id": record.id}
        for key, from_record in sources:
            if key in content:
                email[key] = content[key]
            elif key in summary:
                email[key] = summary[key]
            else:
                email[key] = from_record(record) if from_record is not None else None
        found.append(email)
    listed = {email["id"] for email in found}
    return {
        "accountId": ctx.account_id,
        "state": state,
        "list": found,
        "notFound": [
            i for i in dict.fromkeys(ids) if (ctx.resolve_creation_id(i) or i) not in listed
        ],
    }


def email_changes(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(ChangesArgs, args)
    account = account_of(ctx)
    account.sync()
    response, _ = changes_response(account.cache, EMAIL, request, ctx.account_id)
    return response
