"""Email/parse (RFC 8621 §4.9): blobs read as messages, without importing them.

A blob is an upload (``U...``) or a message or one of its parts (``B...``): an upload is
parsed from its own file, anything else from a spool file it streams into
(``bridge.mail.messages.blob_source``), a window at a time, so a large blob is never whole
in memory. The parts of a parsed blob get blob ids under the parsed one:
``<blob id>_<section>``, where the section continues the enclosing message's numbering when
the blob is an attached message (``B<email>_3`` has parts ``B<email>_3-1``, ...), so every
part blob id that Email/parse hands out downloads, and parses, in turn.
"""

from __future__ import annotations

from typing import Any

from bridge.jmap import CallContext, MethodError, decode_args
from bridge.jmap.standard import StandardArgs, UnsignedInt
from bridge.mail.blobs import part_blob_id, split_blob_id
from bridge.mail.common import account_of
from bridge.mail.email_get import PROPERTIES, render
from bridge.mail.messages import blob_source
from bridge.mime import (
    BODY_PART_PROPERTIES,
    CONVENIENCE_HEADERS,
    ParsedMessage,
    parse_header_property,
    parse_message,
)
from bridge.mime.email_object import ValueBudget

# RFC 8621 §4.9: the Email/get default less the metadata a blob does not have.
DEFAULT_PROPERTIES = (
    *CONVENIENCE_HEADERS, "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody",
    "attachments",
)  # fmt: skip
# Null for a parsed blob (§4.9): it is in no mailbox, has no id, and threadId is only
# known by importing it.
NULL_PROPERTIES = frozenset({"id", "threadId", "mailboxIds", "keywords", "receivedAt"})


class EmailParseArgs(StandardArgs, kw_only=True):
    blobIds: list[str]
    properties: list[str] | None = None
    bodyProperties: list[str] | None = None
    fetchTextBodyValues: bool = False
    fetchHTMLBodyValues: bool = False
    fetchAllBodyValues: bool = False
    maxBodyValueBytes: UnsignedInt = 0


def _check(requested: list[str], allowed: frozenset[str], what: str) -> None:
    # A header:* property asking for a form its field may not take is invalidArguments too.
    bad = [
        name
        for name in requested
        if name not in allowed
        and not (name.startswith("header:") and parse_header_property(name) is not None)
    ]
    if bad:
        raise MethodError("invalidArguments", f"unknown {what}: {', '.join(bad)}")


def is_message(parsed: ParsedMessage) -> bool:
    """Whether a blob reads as a message at all: it must open with a header field. Parsing
    never fails, so this is what tells a message from, say, an image or plain text."""
    return bool(parsed.headers)


def email_parse(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(EmailParseArgs, args)
    properties = list(DEFAULT_PROPERTIES if request.properties is None else request.properties)
    _check(properties, PROPERTIES, "properties")
    if request.bodyProperties is not None:
        _check(request.bodyProperties, BODY_PART_PROPERTIES, "bodyProperties")
    blob_ids = list(dict.fromkeys(request.blobIds))
    # Each blob is read and parsed as Email/get's objects are; the same caps apply.
    ctx.check_max_objects(len(blob_ids), "maxObjectsInGet")
    budget = ValueBudget(ctx.limits.max_size_upload)
    account = account_of(ctx)
    if any(not value.startswith("U") for value in blob_ids):
        account.sync()  # message blob ids resolve through the cache
    parsed: dict[str, Any] = {}
    not_parsable: list[str] = []
    not_found: list[str] = []
    for value in blob_ids:
        with blob_source(account, value) as source:
            if source is None:
                not_found.append(value)
                continue
            whole, section = split_blob_id(value) or (value, None)
            message = parse_message(source, section_prefix=section or "")
            if not is_message(message):
                not_parsable.append(value)
                continue
            email = render(
                ctx,
                request,
                message,
                properties,
                lambda part, whole=whole: part_blob_id(whole, part),
                budget,
            )
        email["blobId"] = value
        email["size"] = message.size
        parsed[value] = {
            name: None if name in NULL_PROPERTIES else email.get(name) for name in properties
        }
    # §4.9: each of the three is null when it would be empty.
    return {
        "accountId": ctx.account_id,
        "parsed": parsed or None,
        "notParsable": not_parsable or None,
        "notFound": not_found or None,
    }
