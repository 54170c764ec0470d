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
import email.quoprimime
import email.utils
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, BinaryIO

from bridge.mime import header_writer
from bridge.mime.creation import (
    ADDRESS_PROPERTIES,
    InvalidProperty,
    check_creation,
    header_values,
)

# Blob id -> its octets in chunks, or None when the blob does not exist.
BlobOpener = Callable[[str], Iterator[bytes] | None]

ADDRESS_HEADERS = {"from": "From", "to": "To", "cc": "Cc", "bcc": "Bcc",
                   "replyTo": "Reply-To", "sender": "Sender"}  # fmt: skip
ID_HEADERS = {"messageId": "Message-ID", "inReplyTo": "In-Reply-To", "references": "References"}
# Header values bridge set raw (set_raw) are folded already: never refolded.
_POLICY = email.policy.SMTP.clone(max_line_length=78, refold_source="none")
# Base64 lines of 76 characters (RFC 2045 §6.8) hold 57 octets.
_LINE_OCTETS = 57
# What a Message-ID's right side is when neither the user nor the From address has a domain.
NEUTRAL_DOMAIN = "jmap-bridge.invalid"
# Line breaks in a body value (only these: splitlines would take U+2028 and others too).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
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


def _header_lines(holder: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(property, field name, value as it follows ``Name:``) for each field the
    ``header:`` properties of an Email or a body part stand for, in the order given."""
    lines = []
    for prop, value in holder.items():
        if not prop.startswith("header:"):
            continue
        header, values = header_values(prop, value)
        for one in values:
            if header.form != "Raw":
                one = " " + header_writer.folded(header.name, _FORM_WRITERS[header.form](one))
            lines.append((prop, header.name, one))
    return lines


def _groups(groups: list[dict[str, Any]]) -> str:
    """EmailAddressGroup objects as an address-list: a group where it has a name."""
    rendered = []
    for group in groups:
        members = header_writer.addresses(group["addresses"])
        if group["name"] is None:
            rendered.append(members)
        else:
            rendered.append(f"{header_writer.display_name(group['name'])}: {members};")
    return ", ".join(part for part in rendered if part)


# A value in each settable form (already checked) as the field's text.
_FORM_WRITERS: dict[str, Callable[[Any], str]] = {
    "Text": lambda text: header_writer.unstructured(text.strip()),
    "Addresses": header_writer.addresses,
    "GroupedAddresses": _groups,
    "MessageIds": header_writer.message_ids,
    "Date": lambda value: email.utils.format_datetime(_date(value)),
    "URLs": lambda urls: ", ".join(f"<{url}>" for url in urls),
}


def _header_fields(
    obj: dict[str, Any], root_lines: list[tuple[str, str, str]], domain: str | None
) -> tuple[list[bytes], str]:
    """The message's own header fields, and its Message-ID (without <>). ``root_lines``
    are the fields the root body part gives itself: the message has them already."""
    fields: list[bytes] = []
    names = {name.lower() for _prop, name, _value in root_lines}

    def add(name: str, line: bytes, prop: str) -> None:
        if name.lower() in names:
            raise ComposeError(f"{prop} gives a header field twice", [prop])
        names.add(name.lower())
        fields.append(line)

    for prop, header in ADDRESS_HEADERS.items():
        if obj.get(prop) is not None:
            add(header, header_writer.field(header, header_writer.addresses(obj[prop])), prop)
    if obj.get("subject") is not None:
        add("Subject", header_writer.field("Subject", header_writer.unstructured(obj["subject"])),
            "subject")  # fmt: skip
    for prop, header in ID_HEADERS.items():
        if obj.get(prop) is not None:
            add(header, header_writer.field(header, header_writer.message_ids(obj[prop])), prop)
    if obj.get("sentAt") is not None:
        add("Date", header_writer.field("Date", email.utils.format_datetime(_date(obj["sentAt"]))),
            "sentAt")  # fmt: skip
    given: dict[str, str] = {}
    lines = _header_lines(obj)
    for prop, name, value in lines:
        lowered = name.lower()
        if lowered.startswith("content-") or lowered == "mime-version":
            raise ComposeError(f"{prop}: Content-* fields belong on body parts", [prop])
        # Only the fields of one header:{name}:all may share a name.
        if lowered in names and given.get(lowered) != prop:
            raise ComposeError(f"{prop} gives a header field twice", [prop])
        given[lowered] = prop
        names.add(lowered)
        fields.append(header_writer.raw_field(name, value))
    # RFC 8621 §4.6: the server sets Date and Message-ID when the client gives neither.
    if "date" not in names:
        fields.append(header_writer.field("Date", email.utils.format_datetime(datetime.now(UTC))))
    if obj.get("messageId") is not None:
        message_id = obj["messageId"][0]
    elif "message-id" in names:
        value = next(v for _p, n, v in lines + root_lines if n.lower() == "message-id")
        # Found again by it should the connection drop during the APPEND.
        message_id = value.strip().removeprefix("<").split(">", 1)[0]
    else:
        right = domain or _from_domain(obj) or NEUTRAL_DOMAIN
        message_id = f"{secrets.token_hex(12)}@{right}"
        fields.append(header_writer.field("Message-ID", f"<{message_id}>"))
    return fields, message_id


def _from_domain(obj: dict[str, Any]) -> str | None:
    senders = obj.get("from") or []
    return senders[0]["email"].rpartition("@")[2].lower() if senders else None


def _inner(part: EmailMessage) -> EmailMessage:
    """MIME-Version belongs on the message only (the top part gets it back)."""
    del part["MIME-Version"]
    return part


def _describe(entity: EmailMessage, part: dict[str, Any], disposition: str | None) -> Any:
    """The part's own header fields: from its properties (``disposition`` when it gives
    none) and its header: properties; MIME-Version belongs on the message only."""
    disposition = (part.get("disposition") or disposition or "").lower()
    if part.get("name") is not None:
        disposition = header_writer.with_parameter(disposition or "attachment", "filename",
                                                   part["name"])  # fmt: skip
    if disposition:
        # Written folded already (the email package would refold it in quadratic time).
        entity.set_raw(
            "Content-Disposition", header_writer.folded("Content-Disposition", disposition)
        )
    if part.get("cid"):
        entity.set_raw("Content-ID", f"<{part['cid']}>")
    if part.get("language"):
        entity.set_raw(
            "Content-Language",
            header_writer.folded("Content-Language", ", ".join(part["language"])),
        )
    if part.get("location") is not None:
        entity.set_raw(
            "Content-Location", header_writer.folded("Content-Location", part["location"])
        )
    for _prop, name, value in _header_lines(part):
        entity.set_raw(name, value.removeprefix(" "))
    del entity["MIME-Version"]
    return entity


def _quoted_printable(text: str) -> str:
    """``text`` as UTF-8 quoted-printable, its lines short and 7-bit as strict servers want,
    and exactly the text: a soft line break ends a text that ends without a line break
    (the line break before a boundary or the message's end is not the text's)."""
    lines = _LINE_BREAK.sub("\n", text)
    ends_a_line = lines.endswith("\n")
    # body_encode takes each character for an octet: it is given the UTF-8 octets.
    encoded = email.quoprimime.body_encode(lines.removesuffix("\n").encode().decode("latin-1"))
    if ends_a_line:
        return encoded + "\n"
    return encoded + "=\n" if encoded else ""


def _text_part(
    part: dict[str, Any], values: dict[str, Any], subtype: str, name: str, disposition: str | None
) -> Any:
    value = values.get(part["partId"])
    if value is None:
        raise ComposeError(f"{name} refers to a missing bodyValue", [name, "bodyValues"])
    if value.get("isTruncated") or value.get("isEncodingProblem"):
        raise ComposeError("bodyValues must not be truncated", ["bodyValues"])
    return _describe(_text(value["value"], subtype), part, disposition)


def _text(text: str, subtype: str) -> EmailMessage:
    leaf = EmailMessage(policy=_POLICY)
    leaf["Content-Type"] = f"text/{subtype}; charset=utf-8"
    leaf["Content-Transfer-Encoding"] = "quoted-printable"
    leaf.set_payload(_quoted_printable(text))
    return leaf


def _blob_part(part: dict[str, Any], blobs: _Blobs, disposition: str | None, name: str) -> Any:
    blob_id = part.get("blobId")
    if blob_id is None:
        raise ComposeError(f"{name}: a part needs a partId or a blobId", [name])
    media_type = str(part.get("type") or "application/octet-stream").lower()
    if media_type.startswith("multipart/"):
        raise ComposeError("a blob cannot be a multipart", [name])
    marker = blobs.marker(blob_id)
    if marker is None:
        return None
    leaf = EmailMessage(policy=_POLICY)
    content_type = media_type
    if part.get("charset") is not None:
        content_type += f"; charset={part['charset']}"
    leaf["Content-Type"] = content_type
    # Base64 even for text: the blob downloads back byte for byte, line ends included.
    leaf["Content-Transfer-Encoding"] = "base64"
    leaf.set_payload(marker)  # replaced by the blob, base64-encoded, as the file is written
    return _describe(leaf, part, disposition)


def _leaf(part: dict[str, Any], values: dict[str, Any], blobs: _Blobs, subtype: str | None,
          name: str) -> Any:  # fmt: skip
    """A body part from bodyValues or from a blob; ``subtype`` the text's, for textBody
    and htmlBody, which stand inline (an attachment is one unless it says otherwise)."""
    disposition = "attachment" if name == "attachments" else None
    if part.get("partId") is None:
        return _blob_part(part, blobs, disposition, name)
    media_type = str(part.get("type") or f"text/{subtype or 'plain'}").lower()
    if not media_type.startswith("text/"):
        raise ComposeError("a part from bodyValues must be text", [name])
    return _text_part(part, values, media_type.split("/", 1)[1], name, disposition)


def _from_structure(part: dict[str, Any], values: dict[str, Any], blobs: _Blobs) -> Any:
    media_type = str(part.get("type") or "text/plain").lower()
    if not media_type.startswith("multipart/"):
        # The client's tree as it gives it: a disposition only where it says one.
        return _leaf(part, values, blobs, None, "bodyStructure")
    container = EmailMessage(policy=_POLICY)
    container.set_type(media_type)
    container.set_boundary("=_" + secrets.token_hex(12))
    for sub in part.get("subParts") or []:
        child = _from_structure(sub, values, blobs)
        if child is not None:
            container.attach(child)
    return _describe(container, part, None)


def compose(
    obj: dict[str, Any],
    open_blob: BlobOpener,
    out: BinaryIO,
    *,
    max_header_length: int,
    domain: str | None = None,
) -> str:
    """Write the message (CRLF) for a JMAP Email to create to ``out``; its Message-ID.
    A Message-ID bridge makes is at ``domain``, else at the From address's domain."""
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
        root = obj["bodyStructure"]
        body = _from_structure(root, values, blobs)
    else:
        root, body = _simple_body(obj, values, blobs)
    if blobs.missing:
        raise BlobsNotFound(blobs.missing)
    fields, message_id = _header_fields(obj, _header_lines(root), domain)
    # The body entity becomes the message: its Content-* fields follow the message's own.
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


def _simple_body(
    obj: dict[str, Any], values: dict[str, Any], blobs: _Blobs
) -> tuple[dict[str, Any], Any]:
    """The body of textBody, htmlBody and attachments, and the part given for its root
    entity (empty when bridge makes the root)."""
    text, html = obj.get("textBody"), obj.get("htmlBody")
    given_parts: list[dict[str, Any]] = []
    parts = []
    for given, subtype, name in ((text, "plain", "textBody"), (html, "html", "htmlBody")):
        if given is None:
            continue
        if len(given) != 1:
            raise ComposeError(f"{name} must hold exactly one part", [name])
        if str(given[0].get("type") or f"text/{subtype}").lower() != f"text/{subtype}":
            raise ComposeError(f"{name} must be text/{subtype}", [name])
        given_parts.append(given[0])
        parts.append(_leaf({"type": f"text/{subtype}", **given[0]}, values, blobs, subtype,
                           name))  # fmt: skip
    if not parts:
        parts.append(_text("", "plain"))
    parts = [part for part in parts if part is not None]
    leaves = [_leaf(attachment, values, blobs, None, "attachments")
              for attachment in obj.get("attachments") or []]  # fmt: skip
    if len(parts) == 1 and not leaves:
        return (given_parts[0] if given_parts else {}), parts[0]
    body = parts[0] if parts else None
    if len(parts) == 2:
        body = _alternative(parts)
    if not leaves:
        return {}, body
    mixed = EmailMessage(policy=_POLICY)
    mixed.set_type("multipart/mixed")
    mixed.set_boundary("=_" + secrets.token_hex(12))
    if body is not None:
        mixed.attach(body)
    mixed = _inner(mixed)
    for leaf in leaves:
        if leaf is not None:
            mixed.attach(leaf)
    return {}, mixed


def _alternative(parts: list[Any]) -> Any:
    body = EmailMessage(policy=_POLICY)
    body.set_type("multipart/alternative")
    body.set_boundary("=_" + secrets.token_hex(12))
    for part in parts:
        body.attach(part)
    return _inner(body)
