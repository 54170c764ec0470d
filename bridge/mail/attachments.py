"""hasAttachment from IMAP BODYSTRUCTURE, by the same rule the MIME parser applies.

The spec's textBody/htmlBody/attachments algorithm (bridge.mime.split_body) runs on any
tree of parts with type, disposition, name, cid and subparts: this module builds that
tree from a BODYSTRUCTURE as imapclient parses it (RFC 3501 §7.4.2), so a list view
answered from BODYSTRUCTURE agrees with an Email/get that parsed the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.mime import has_attachment, split_body


@dataclass
class StructurePart:
    type: str
    disposition: str | None = None
    name: str | None = None
    cid: str | None = None
    subparts: list[StructurePart] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _params(value: Any) -> dict[str, str]:
    if not isinstance(value, tuple | list):
        return {}
    items = [_text(v) or "" for v in value]
    return {items[i].lower(): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _disposition(value: Any) -> tuple[str | None, dict[str, str]]:
    if isinstance(value, tuple | list) and value:
        kind = _text(value[0])
        return (kind.lower() if kind else None), _params(value[1] if len(value) > 1 else None)
    return None, {}


def structure_tree(structure: Any) -> StructurePart:
    if not isinstance(structure, tuple | list) or not structure:
        return StructurePart("text/plain")
    if isinstance(structure[0], list | tuple):  # multipart: (parts, subtype, params, disp)
        subtype = (_text(structure[1]) or "mixed").lower()
        part = StructurePart(f"multipart/{subtype}")
        part.subparts = [structure_tree(child) for child in structure[0]]
        return part
    media_type = f"{(_text(structure[0]) or 'text').lower()}/{(_text(structure[1]) or '').lower()}"
    # Extension data follows the basic fields, the line count of text/*, the envelope,
    # body and line count of message/rfc822, and MD5.
    extension = {"text": 8, "message/rfc822": 10}.get(
        media_type if media_type == "message/rfc822" else media_type.split("/")[0], 7
    )
    disposition, disposition_params = _disposition(
        structure[extension + 1] if len(structure) > extension + 1 else None
    )
    name = disposition_params.get("filename") or _params(structure[2]).get("name")
    cid = _text(structure[3])
    return StructurePart(media_type, disposition, name, cid.strip("<>") if cid else None)


def has_attachment_from_bodystructure(structure: Any) -> bool:
    _, _, attachments = split_body(structure_tree(structure))
    return has_attachment(attachments)
