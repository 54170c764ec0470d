"""A JMAP Email object (RFC 8621 §4.6 creation rules) -> RFC 5322 message bytes.

Python's email package writes the headers (RFC 2047 encoded words for non-ASCII), the
parameters (RFC 2231 for non-ASCII filenames) and the transfer encodings; this module
decides the structure: text alone, text and HTML as multipart/alternative, and any
attachments beside them in multipart/mixed, or the tree a client gives in bodyStructure.
"""

from __future__ import annotations

import email.policy
import email.utils
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

# Blob id -> (octets, media type) or None when the blob does not exist.
BlobReader = Callable[[str], bytes | None]

ADDRESS_HEADERS = {"from": "From", "to": "To", "cc": "Cc", "bcc": "Bcc",
                   "replyTo": "Reply-To", "sender": "Sender"}  # fmt: skip
ID_HEADERS = {"messageId": "Message-ID", "inReplyTo": "In-Reply-To", "references": "References"}
_POLICY = email.policy.SMTP.clone(max_line_length=78)


class ComposeError(ValueError):
    def __init__(self, description: str, properties: list[str]) -> None:
        super().__init__(description)
        self.properties = properties


class BlobsNotFound(ValueError):
    def __init__(self, blob_ids: list[str]) -> None:
        super().__init__("blobs not found")
        self.blob_ids = blob_ids


def _addresses(value: Any, name: str) -> str:
    if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
        raise ComposeError(f"{name} must be a list of EmailAddress", [name])
    out = []
    for address in value:
        mail = address.get("email")
        if not isinstance(mail, str) or any(ch in mail for ch in "\r\n<>,"):
            raise ComposeError(f"{name} has a bad email", [name])
        display = address.get("name")
        out.append(email.utils.formataddr((display, mail)) if display else mail)
    return ", ".join(out)


def _ids(value: Any, name: str) -> str:
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise ComposeError(f"{name} must be a list of ids", [name])
    if any(ch in i for i in value for ch in "<> \r\n"):
        raise ComposeError(f"{name} has a bad id", [name])
    return " ".join(f"<{i}>" for i in value)


def _date(value: Any, name: str) -> str:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ComposeError(f"{name} must be a Date", [name]) from exc
    if moment.tzinfo is None:
        raise ComposeError(f"{name} must carry a time zone", [name])
    return email.utils.format_datetime(moment)


def _set_headers(message: EmailMessage, obj: dict[str, Any], domain: str) -> None:
    for prop, header in ADDRESS_HEADERS.items():
        if obj.get(prop) is not None:
            message[header] = _addresses(obj[prop], prop)
    if obj.get("subject") is not None:
        if not isinstance(obj["subject"], str) or any(c in obj["subject"] for c in "\r\n"):
            raise ComposeError("subject must be one line of text", ["subject"])
        message["Subject"] = obj["subject"]
    for prop, header in ID_HEADERS.items():
        if obj.get(prop) is not None:
            message[header] = _ids(obj[prop], prop)
    message["Date"] = (
        _date(obj["sentAt"], "sentAt") if obj.get("sentAt")
        else email.utils.format_datetime(datetime.now(UTC))
    )  # fmt: skip
    if "Message-ID" not in message:
        message["Message-ID"] = f"<{secrets.token_hex(12)}@{domain}>"
    for prop, value in obj.items():
        if not prop.startswith("header:"):
            continue
        parts = prop.split(":")
        form = parts[2].lower() if len(parts) > 2 else "asraw"
        if len(parts) > 3 or form not in ("asraw", "astext") or not isinstance(value, str):
            raise ComposeError(f"{prop}: only asRaw and asText can be set", [prop])
        name = parts[1]
        if name.lower().startswith("content-") or name.lower() in {h.lower() for h in message}:
            raise ComposeError(f"{prop} repeats or conflicts with another header", [prop])
        if "\r" in value or "\n" in value.replace("\r\n ", "").replace("\r\n\t", ""):
            raise ComposeError(f"{prop} must be one (folded) line", [prop])
        message[name] = value.strip() if form == "astext" else value.lstrip()


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


def _blob_part(part: dict[str, Any], read: BlobReader, missing: list[str]) -> Any:
    blob_id = part.get("blobId")
    if not isinstance(blob_id, str):
        raise ComposeError("an attachment needs a blobId", ["attachments"])
    data = read(blob_id)
    if data is None:
        missing.append(blob_id)
        return None
    media_type = str(part.get("type") or "application/octet-stream").lower()
    maintype, _, subtype = media_type.partition("/")
    leaf = EmailMessage(policy=_POLICY)
    disposition = part.get("disposition") or "attachment"
    # Base64 even for text: the blob downloads back byte for byte, line ends included.
    leaf.set_content(data, maintype=maintype or "application",
                     subtype=subtype or "octet-stream", disposition=disposition,
                     filename=part.get("name"))  # fmt: skip
    if part.get("cid"):
        leaf["Content-ID"] = f"<{part['cid']}>"
    return _inner(leaf)


def _from_structure(
    part: dict[str, Any], values: dict[str, Any], read: BlobReader, missing: list[str]
) -> Any:
    media_type = str(part.get("type") or "text/plain").lower()
    if media_type.startswith("multipart/"):
        container = EmailMessage(policy=_POLICY)
        container.set_type(media_type)
        container.set_boundary("=_" + secrets.token_hex(12))
        for sub in part.get("subParts") or []:
            child = _from_structure(sub, values, read, missing)
            if child is not None:
                container.attach(child)
        return _inner(container)
    if part.get("partId") is not None:
        if not media_type.startswith("text/"):
            raise ComposeError("a part from bodyValues must be text", ["bodyStructure"])
        return _text_part(part, values, media_type.split("/", 1)[1], "bodyStructure")
    return _blob_part(part, read, missing)


def compose(obj: dict[str, Any], read: BlobReader, domain: str = "jmap-bridge.invalid") -> bytes:
    """The message bytes (CRLF) for a JMAP Email to create."""
    if "headers" in obj:
        raise ComposeError("give each header as its own property", ["headers"])
    values = obj.get("bodyValues") or {}
    if not isinstance(values, dict):
        raise ComposeError("bodyValues must be an object", ["bodyValues"])
    missing: list[str] = []
    if obj.get("bodyStructure") is not None:
        if any(obj.get(k) is not None for k in ("textBody", "htmlBody", "attachments")):
            raise ComposeError("bodyStructure excludes textBody, htmlBody and attachments",
                               ["bodyStructure"])  # fmt: skip
        body = _from_structure(obj["bodyStructure"], values, read, missing)
    else:
        body = _simple_body(obj, values, read, missing)
    if missing:
        raise BlobsNotFound(missing)
    # The body entity becomes the message: its Content-* fields stay, the rest join them.
    _set_headers(body, obj, domain)
    if "MIME-Version" not in body:
        body["MIME-Version"] = "1.0"
    return body.as_bytes(policy=_POLICY)


def _simple_body(
    obj: dict[str, Any], values: dict[str, Any], read: BlobReader, missing: list[str]
) -> Any:
    text, html = obj.get("textBody"), obj.get("htmlBody")
    parts = []
    for given, subtype, name in ((text, "plain", "textBody"), (html, "html", "htmlBody")):
        if given is None:
            continue
        if not isinstance(given, list) or len(given) != 1 or not isinstance(given[0], dict):
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
    attachments = obj.get("attachments") or []
    if not isinstance(attachments, list):
        raise ComposeError("attachments must be a list", ["attachments"])
    leaves = [_blob_part(a, read, missing) for a in attachments if isinstance(a, dict)]
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
