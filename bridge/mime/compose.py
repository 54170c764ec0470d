"""A JMAP Email object (RFC 8621 §4.6 creation rules) -> RFC 5322 message, written to a
file as it is made.

The object is checked whole first (``bridge.mime.creation``). The message's own header
fields are written by ``header_writer``, in linear time; Python's email package writes the
MIME entities below them (RFC 2231 parameters, quoted-printable text) and this module
decides the structure: text alone, text and HTML as multipart/alternative, and any
attachments beside them in multipart/mixed, or the tree a client gives in bodyStructure.
An attachment's blob never sits whole in memory: its entity is serialised with a marker
for a body, and the blob is base64-encoded into the file chunk by chunk in its place.
"""

from __future__ import annotations

import binascii
import email.policy
import email.utils
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, BinaryIO

from bridge.mime import header_writer
from bridge.mime.creation import ADDRESS_PROPERTIES, InvalidProperty, check_creation

# Blob id -> its octets in chunks, or None when the blob does not exist.
BlobOpener = Callable[[str], Iterator[bytes] | None]

ADDRESS_HEADERS = {"from": "From", "to": "To", "cc": "Cc", "bcc": "Bcc",
                   "replyTo": "Reply-To", "sender": "Sender"}  # fmt: skip
ID_HEADERS = {"messageId": "Message-ID", "inReplyTo": "In-Reply-To", "references": "References"}
# Header values bridge set raw (set_raw) are folded already: never refolded.
_POLICY = email.policy.SMTP.clone(max_line_length=78, refold_source="none")
# Base64 lines of 76 characters (RFC 2045 §6.8) hold 57 octets.
_LINE_OCTETS = 57
assert set(ADDRESS_HEADERS) == set(ADDRESS_PROPERTIES)


class ComposeError(ValueError):
    def __init__(self, description: str, properties: list[str]) -> None:
        super().__init__(description)
        self.properties = properties


class BlobsNotFound(ValueError):
    def __init__(self, blob_ids: list[str]) -> None:
        super().__init__("blobs not found")
        self.blob_ids = blob_ids


class _Blobs:
    """The attachments of one message: each opened once, and a marker to stand for it
    in the serialised entities until it is written."""

    def __init__(self, opener: BlobOpener) -> None:
        self.opener = opener
        self.token = secrets.token_hex(16)
        self.opened: list[Iterator[bytes]] = []
        self.missing: list[str] = []

    def marker(self, blob_id: str) -> str | None:
        chunks = self.opener(blob_id)
        if chunks is None:
            self.missing.append(blob_id)
            return None
        self.opened.append(chunks)
        return f"BRIDGE-BLOB-{self.token}-{len(self.opened) - 1}"

    def pattern(self) -> re.Pattern[bytes]:
        return re.compile(rb"BRIDGE-BLOB-" + self.token.encode() + rb"-([0-9]+)")


def _date(value: str) -> datetime:
    """A Date already checked (bridge.mime.creation)."""
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))


def _header_fields(obj: dict[str, Any], domain: str) -> tuple[list[bytes], str]:
    """The message's own header fields, and its Message-ID (without <>)."""
    fields: list[bytes] = []
    names: set[str] = set()

    def add(name: str, line: bytes) -> None:
        names.add(name.lower())
        fields.append(line)

    for prop, header in ADDRESS_HEADERS.items():
        if obj.get(prop) is not None:
            add(header, header_writer.field(header, header_writer.addresses(obj[prop])))
    if obj.get("subject") is not None:
        add("Subject", header_writer.field("Subject", header_writer.unstructured(obj["subject"])))
    for prop, header in ID_HEADERS.items():
        if obj.get(prop) is not None:
            add(header, header_writer.field(header, header_writer.message_ids(obj[prop])))
    sent = datetime.now(UTC) if obj.get("sentAt") is None else _date(obj["sentAt"])
    add("Date", header_writer.field("Date", email.utils.format_datetime(sent)))
    if obj.get("messageId") is None:
        message_id = f"{secrets.token_hex(12)}@{domain}"
        add("Message-ID", header_writer.field("Message-ID", f"<{message_id}>"))
    else:
        message_id = obj["messageId"][0]
    for prop, value in obj.items():
        if not prop.startswith("header:"):
            continue
        parts = prop.split(":")
        name, form = parts[1], (parts[2].lower() if len(parts) > 2 else "asraw")
        lowered = name.lower()
        if lowered.startswith("content-") or lowered == "mime-version" or lowered in names:
            raise ComposeError(f"{prop} repeats or conflicts with another header", [prop])
        if form == "astext":
            add(name, header_writer.field(name, header_writer.unstructured(value.strip())))
        else:
            add(name, header_writer.raw_field(name, value))
    return fields, message_id


def _inner(part: EmailMessage) -> EmailMessage:
    """MIME-Version belongs on the message only (the top part gets it back)."""
    del part["MIME-Version"]
    return part


def _text_part(part: dict[str, Any], values: dict[str, Any], subtype: str, name: str) -> Any:
    part_id = part.get("partId")
    value = values.get(part_id) if isinstance(part_id, str) else None
    if not isinstance(value, dict) or not isinstance(value.get("value"), str):
        raise ComposeError(f"{name} refers to a missing bodyValue", [name, "bodyValues"])
    if value.get("isTruncated") or value.get("isEncodingProblem"):
        raise ComposeError("bodyValues must not be truncated", ["bodyValues"])
    leaf = EmailMessage(policy=_POLICY)
    # Quoted-printable keeps every line short and 7-bit, which strict servers want.
    leaf.set_content(value["value"], subtype=subtype, charset="utf-8", cte="quoted-printable")
    return _inner(leaf)


def _blob_part(part: dict[str, Any], blobs: _Blobs) -> Any:
    blob_id = part.get("blobId")
    if not isinstance(blob_id, str):
        raise ComposeError("an attachment needs a blobId", ["attachments"])
    media_type = str(part.get("type") or "application/octet-stream").lower()
    if media_type.startswith("multipart/"):
        raise ComposeError("a blob cannot be a multipart", ["attachments"])
    marker = blobs.marker(blob_id)
    if marker is None:
        return None
    maintype, _, subtype = media_type.partition("/")
    leaf = EmailMessage(policy=_POLICY)
    # Base64 even for text: the blob downloads back byte for byte, line ends included.
    leaf.set_content(b"", maintype=maintype, subtype=subtype)
    disposition = str(part.get("disposition") or "attachment").lower()
    if part.get("name") is not None:
        disposition = header_writer.with_parameter(disposition, "filename", part["name"])
    # Written folded already (the email package would refold it in quadratic time).
    leaf.set_raw("Content-Disposition", header_writer.folded("Content-Disposition", disposition))
    if part.get("cid"):
        leaf.set_raw("Content-ID", f"<{part['cid']}>")
    leaf.set_payload(marker)  # replaced by the blob, base64-encoded, as the file is written
    return _inner(leaf)


def _from_structure(part: dict[str, Any], values: dict[str, Any], blobs: _Blobs) -> Any:
    media_type = str(part.get("type") or "text/plain").lower()
    if media_type.startswith("multipart/"):
        container = EmailMessage(policy=_POLICY)
        container.set_type(media_type)
        container.set_boundary("=_" + secrets.token_hex(12))
        for sub in part.get("subParts") or []:
            child = _from_structure(sub, values, blobs)
            if child is not None:
                container.attach(child)
        return _inner(container)
    if part.get("partId") is not None:
        if not media_type.startswith("text/"):
            raise ComposeError("a part from bodyValues must be text", ["bodyStructure"])
        return _text_part(part, values, media_type.split("/", 1)[1], "bodyStructure")
    return _blob_part(part, blobs)


def compose(
    obj: dict[str, Any],
    open_blob: BlobOpener,
    out: BinaryIO,
    *,
    max_header_length: int,
    domain: str = "jmap-bridge.invalid",
) -> str:
    """Write the message (CRLF) for a JMAP Email to create to ``out``; its Message-ID."""
    if "headers" in obj:
        raise ComposeError("give each header as its own property", ["headers"])
    try:
        check_creation(obj, max_header_length)
    except InvalidProperty as exc:
        raise ComposeError(str(exc), [exc.prop]) from exc
    values = obj.get("bodyValues") or {}
    blobs = _Blobs(open_blob)
    if obj.get("bodyStructure") is not None:
        if any(obj.get(k) is not None for k in ("textBody", "htmlBody", "attachments")):
            raise ComposeError("bodyStructure excludes textBody, htmlBody and attachments",
                               ["bodyStructure"])  # fmt: skip
        body = _from_structure(obj["bodyStructure"], values, blobs)
    else:
        body = _simple_body(obj, values, blobs)
    if blobs.missing:
        raise BlobsNotFound(blobs.missing)
    fields, message_id = _header_fields(obj, domain)
    # The body entity becomes the message: its Content-* fields follow the message's own.
    if "MIME-Version" not in body:
        body["MIME-Version"] = "1.0"
    out.write(b"".join(fields))
    entities = body.as_bytes(policy=_POLICY)
    position = 0
    for found in blobs.pattern().finditer(entities):
        out.write(entities[position : found.start()])
        _write_base64(blobs.opened[int(found.group(1))], out)
        position = found.end()
    out.write(entities[position:])
    return message_id


def _write_base64(chunks: Iterator[bytes], out: BinaryIO) -> None:
    """Base64 in lines of 76 characters (RFC 2045 §6.8), CRLF between them and none after
    the last (the line break before the boundary follows)."""
    held = b""
    separator = b""
    for chunk in chunks:
        data = held + chunk
        whole = len(data) - len(data) % _LINE_OCTETS
        held = data[whole:]
        if whole:
            lines = binascii.b2a_base64(data[:whole], newline=False)
            out.write(separator + b"\r\n".join(
                lines[i : i + 76] for i in range(0, len(lines), 76)
            ))  # fmt: skip
            separator = b"\r\n"
    if held:
        out.write(separator + binascii.b2a_base64(held, newline=False))


def _simple_body(obj: dict[str, Any], values: dict[str, Any], blobs: _Blobs) -> Any:
    text, html = obj.get("textBody"), obj.get("htmlBody")
    parts = []
    for given, subtype, name in ((text, "plain", "textBody"), (html, "html", "htmlBody")):
        if given is None:
            continue
        if len(given) != 1:
            raise ComposeError(f"{name} must hold exactly one part", [name])
        if str(given[0].get("type") or f"text/{subtype}").lower() != f"text/{subtype}":
            raise ComposeError(f"{name} must be text/{subtype}", [name])
        parts.append(_text_part(given[0], values, subtype, name))
    if not parts:
        empty = EmailMessage(policy=_POLICY)
        empty.set_content("", subtype="plain", charset="utf-8")
        parts.append(empty)
    if len(parts) == 2:
        body = EmailMessage(policy=_POLICY)
        body.set_type("multipart/alternative")
        body.set_boundary("=_" + secrets.token_hex(12))
        for part in parts:
            body.attach(part)
        body = _inner(body)
    else:
        body = parts[0]
    leaves = [_blob_part(attachment, blobs) for attachment in obj.get("attachments") or []]
    if not leaves:
        return body
    mixed = EmailMessage(policy=_POLICY)
    mixed.set_type("multipart/mixed")
    mixed.set_boundary("=_" + secrets.token_hex(12))
    mixed.attach(body)
    mixed = _inner(mixed)
    for leaf in leaves:
        if leaf is not None:
            mixed.attach(leaf)
    return mixed
