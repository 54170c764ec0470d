"""The Email properties that follow from a message's bytes alone (RFC 8621 §4.1, §4.2).

Metadata (id, blobId, threadId, mailboxIds, keywords, size, receivedAt) is the caller's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bridge.mime.bodies import has_attachment, split_body
from bridge.mime.charset import decode_bytes, decode_stream
from bridge.mime.forms import header_value, instances_value
from bridge.mime.header_property import parse_header_property
from bridge.mime.headers import Header, parse_header_block
from bridge.mime.preview import HTML_SCAN_LIMIT, PREVIEW_LENGTH, html_to_text, preview_from_text
from bridge.mime.structure import MimePart, ParsedMessage

DEFAULT_BODY_PROPERTIES = (
    "partId",
    "blobId",
    "size",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
)
BODY_PART_PROPERTIES = frozenset({*DEFAULT_BODY_PROPERTIES, "headers", "subParts"})

# Convenience properties and the header property each is identical to (§4.1.3).
CONVENIENCE_HEADERS: dict[str, tuple[str, str]] = {
    "messageId": ("Message-ID", "MessageIds"),
    "inReplyTo": ("In-Reply-To", "MessageIds"),
    "references": ("References", "MessageIds"),
    "sender": ("Sender", "Addresses"),
    "from": ("From", "Addresses"),
    "to": ("To", "Addresses"),
    "cc": ("Cc", "Addresses"),
    "bcc": ("Bcc", "Addresses"),
    "replyTo": ("Reply-To", "Addresses"),
    "subject": ("Subject", "Text"),
    "sentAt": ("Date", "Date"),
}
BODY_DERIVED_PROPERTIES = frozenset(
    {
        "bodyStructure",
        "bodyValues",
        "textBody",
        "htmlBody",
        "attachments",
        "hasAttachment",
        "preview",
    }
)
# Every Email property this package answers; header:* properties come on top.
EMAIL_PROPERTIES = frozenset({*CONVENIENCE_HEADERS, *BODY_DERIVED_PROPERTIES, "headers"})

BlobIdFor = Callable[[str], str]
# The text a preview is made from: all of it for the HTML scan, and for plain text far
# more than 256 characters of words need unless the part is mostly white space.
PREVIEW_TEXT_LIMIT = HTML_SCAN_LIMIT + 1


class BodyValuesTooLarge(Exception):
    """The body values asked for, together, are more than the caller's budget."""


class ValueBudget:
    """How many octets of body values a call may still return (RFC 8621 sets no limit; a
    server needs one)."""

    def __init__(self, octets: int) -> None:
        self.left = octets

    def take(self, octets: int) -> None:
        if octets > self.left:
            raise BodyValuesTooLarge(octets)
        self.left -= octets


def _headers_list(headers: Sequence[Header]) -> list[dict[str, str]]:
    return [{"name": header.name, "value": header.raw} for header in headers]


def header_properties(headers: Sequence[Header], properties: Iterable[str]) -> dict[str, Any]:
    """The header-derived properties among ``properties``: convenience ones, ``headers``, and
    valid ``header:*`` ones (keyed exactly as requested). Anything else is skipped."""
    result: dict[str, Any] = {}
    by_name: dict[str, list[Header]] = {}
    for header in headers:
        by_name.setdefault(header.name.lower(), []).append(header)
    for prop in properties:
        if prop in CONVENIENCE_HEADERS:
            name, form = CONVENIENCE_HEADERS[prop]
            result[prop] = instances_value(by_name.get(name.lower(), []), form)
        elif prop == "headers":
            result[prop] = _headers_list(headers)
        elif prop.startswith("header:"):
            parsed = parse_header_property(prop)
            if parsed is not None:
                found = by_name.get(parsed.name.lower(), [])
                result[prop] = instances_value(found, parsed.form, parsed.all_instances)
    return result


def summary_from_headers(
    header_bytes: bytes, properties: Iterable[str] | None = None
) -> dict[str, Any]:
    """Header-derived properties from a header block alone (``BODY.PEEK[HEADER]``); by default
    every convenience property (messageId ... sentAt)."""
    headers, _ = parse_header_block(header_bytes)
    return header_properties(headers, CONVENIENCE_HEADERS if properties is None else properties)


def truncate_value(value: str, max_bytes: int, is_html: bool = False) -> tuple[str, bool]:
    """Cut ``value`` to at most ``max_bytes`` octets of UTF-8 on a character boundary and, for
    HTML, not inside a tag; returns (value, truncated). 0 means no limit."""
    if max_bytes <= 0:
        return value, False
    encoded = value.encode("utf-8")
    if len(encoded) <= max_bytes:
        return value, False
    # The cut can only leave an incomplete sequence at the end, which "ignore" drops.
    cut = encoded[:max_bytes].decode("utf-8", "ignore")
    if is_html:
        open_tag = cut.rfind("<")
        if open_tag > cut.rfind(">"):
            cut = cut[:open_tag]
    return cut, True


class _EmailView:
    """Renders one parsed message; caches decoded text so preview and bodyValues share it."""

    def __init__(
        self, parsed: ParsedMessage, body_properties: Sequence[str], blob_id_for: BlobIdFor
    ) -> None:
        self.parsed = parsed
        self.body_properties = body_properties
        self.blob_id_for = blob_id_for
        self.text_body, self.html_body, self.attachments = split_body(parsed.root)
        # part id -> (text, problem, how many characters the text was cut to, if it was)
        self._texts: dict[str, tuple[str, bool, int | None]] = {}

    def text(self, part: MimePart, limit: int) -> tuple[str, bool]:
        """The part's content as text (CRLF made LF), at least its first ``limit``
        characters, and whether decoding hit a problem. A small part is decoded whole; a
        large one chunk by chunk, keeping only the first ``limit`` characters."""
        key = part.part_id or ""
        cached = self._texts.get(key)
        if cached is not None and (cached[2] is None or cached[2] >= limit):
            return cached[0], cached[1]
        if self.parsed.is_small(part):
            octets, transfer_problem = self.parsed.decode(part)
            text, charset_problem = decode_bytes(octets, part.fields.charset)
            cached = (text.replace("\r\n", "\n"), transfer_problem or charset_problem, None)
        else:
            transfer_problem: list[Callable[[], bool]] = []

            def chunks() -> Iterable[bytes]:
                decoded, problem = self.parsed.content_chunks(part)
                transfer_problem[:] = [problem]
                return decoded

            text, charset_problem = decode_stream(chunks, part.fields.charset, limit)
            cached = (text, transfer_problem[0]() or charset_problem, limit)
        self._texts[key] = cached
        return cached[0], cached[1]

    def body_part(self, part: MimePart) -> dict[str, Any]:
        result: dict[str, Any] = {}
        fields = part.fields
        for prop in self.body_properties:
            if prop == "partId":
                result[prop] = part.part_id
            elif prop == "blobId":
                result[prop] = None if part.part_id is None else self.blob_id_for(part.part_id)
            elif prop == "size":
                result[prop] = self.parsed.content_size(part)
            elif prop == "headers":
                result[prop] = _headers_list(part.headers)
            elif prop in ("name", "type", "charset", "disposition", "cid", "language", "location"):
                result[prop] = getattr(fields, prop)
            elif prop == "subParts":
                result[prop] = None
            elif prop.startswith("header:"):
                parsed = parse_header_property(prop)
                if parsed is not None:
                    result[prop] = header_value(
                        part.headers, parsed.name, parsed.form, parsed.all_instances
                    )
        # The default bodyProperties omit subParts, yet bodyStructure is no tree without it.
        if part.is_multipart:
            result["subParts"] = [self.body_part(child) for child in part.subparts]
        return result

    def body_values(
        self,
        fetch_text: bool,
        fetch_html: bool,
        fetch_all: bool,
        max_bytes: int,
        budget: ValueBudget | None,
    ) -> dict[str, dict[str, Any]]:
        wanted: set[str] = set()
        if fetch_all:
            wanted.update(p.part_id for p in self.parsed.walk() if p.part_id is not None)
        if fetch_text:
            wanted.update(p.part_id for p in self.text_body if p.part_id is not None)
        if fetch_html:
            wanted.update(p.part_id for p in self.html_body if p.part_id is not None)
        values: dict[str, dict[str, Any]] = {}
        for part in self.parsed.walk():
            if part.part_id not in wanted or not part.type.startswith("text/"):
                continue
            # One character more than the value may hold tells truncate_value to cut it.
            limit = max_bytes + 1 if max_bytes > 0 else sys.maxsize
            if budget is not None:
                limit = min(limit, budget.left + 1)
            text, problem = self.text(part, limit)
            value, truncated = truncate_value(text, max_bytes, part.type == "text/html")
            if budget is not None:
                # More characters than the budget has octets is over it, without encoding.
                over = len(value) > budget.left
                budget.take(len(value) if over else len(value.encode("utf-8")))
            values[part.part_id] = {
                "value": value,
                "isEncodingProblem": problem,
                "isTruncated": truncated,
            }
        return values

    def preview(self) -> str:
        pieces: list[str] = []
        length = 0
        for part in self.text_body:
            if part.type not in ("text/plain", "text/html"):
                continue
            text = self.text(part, PREVIEW_TEXT_LIMIT)[0]
            if part.type == "text/html":
                text = html_to_text(text)
            piece = preview_from_text(text)
            if piece:
                pieces.append(piece)
                length += len(piece) + 1
            if length > PREVIEW_LENGTH:
                break
        return preview_from_text(" ".join(pieces))


def email_properties(
    parsed: ParsedMessage,
    properties: Iterable[str],
    *,
    blob_id_for: BlobIdFor,
    body_properties: Sequence[str] | None = None,
    fetch_text: bool = False,
    fetch_html: bool = False,
    fetch_all: bool = False,
    max_body_value_bytes: int = 0,
    value_budget: ValueBudget | None = None,
) -> dict[str, Any]:
    """The requested Email properties derivable from the message itself (RFC 8621 §4.1).

    ``blob_id_for(part_id)`` names the blob of a non-multipart part. ``value_budget``, if
    given, is what the body values may take in all (shared by the Emails of one call);
    beyond it, ``BodyValuesTooLarge``. Unknown properties,
    including the metadata ones the caller fills in, are left out; validating the request
    (bodyProperties, header:* syntax and forms) is the caller's.
    """
    properties = list(properties)
    result = header_properties(parsed.headers, properties)
    wanted_body = BODY_DERIVED_PROPERTIES.intersection(properties)
    if not wanted_body:
        return result
    view = _EmailView(
        parsed,
        DEFAULT_BODY_PROPERTIES if body_properties is None else body_properties,
        blob_id_for,
    )
    if "bodyStructure" in wanted_body:
        result["bodyStructure"] = view.body_part(parsed.root)
    if "bodyValues" in wanted_body:
        result["bodyValues"] = view.body_values(
            fetch_text, fetch_html, fetch_all, max_body_value_bytes, value_budget
        )
    if "textBody" in wanted_body:
        result["textBody"] = [view.body_part(part) for part in view.text_body]
    if "htmlBody" in wanted_body:
        result["htmlBody"] = [view.body_part(part) for part in view.html_body]
    if "attachments" in wanted_body:
        result["attachments"] = [view.body_part(part) for part in view.attachments]
    if "hasAttachment" in wanted_body:
        result["hasAttachment"] = has_attachment(view.attachments)
    if "preview" in wanted_body:
        result["preview"] = view.preview()
    return result
