"""hasAttachment, decided the same way from IMAP BODYSTRUCTURE and from a parsed message.

RFC 8621 leaves the definition to the server. Here a message has an attachment when some
leaf part is marked as one (Content-Disposition: attachment), or is neither text nor a
signature nor an inline image the HTML refers to by Content-ID.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

SIGNATURES = frozenset({"application/pgp-signature", "application/pkcs7-signature",
                        "application/x-pkcs7-signature"})  # fmt: skip


class Leaf(NamedTuple):
    media_type: str  # "image/png"
    disposition: str | None
    has_cid: bool


def has_attachment(leaves: Iterable[Leaf]) -> bool:
    for leaf in leaves:
        if leaf.disposition == "attachment":
            return True
        main = leaf.media_type.split("/", 1)[0]
        if main in ("text", "multipart") or leaf.media_type in SIGNATURES:
            continue
        if main == "image" and leaf.has_cid and leaf.disposition != "attachment":
            continue
        return True
    return False


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").lower()
    return str(value).lower() if value is not None else ""


def leaves_from_bodystructure(structure: Any) -> Iterator[Leaf]:
    """Leaf parts of an IMAP BODYSTRUCTURE as imapclient parses it (RFC 3501 §7.4.2)."""
    if not isinstance(structure, tuple | list) or not structure:
        return
    if isinstance(structure[0], list | tuple):  # multipart: (parts, subtype, ...)
        for part in structure[0]:
            yield from leaves_from_bodystructure(part)
        return
    media_type = f"{_text(structure[0])}/{_text(structure[1])}"
    if media_type == "message/rfc822":
        # An attached message is an attachment in its own right.
        yield Leaf(media_type, "attachment", False)
        return
    # Extension data follows the basic fields, the line count of text/*, and MD5.
    extension = 8 if media_type.startswith("text/") else 7
    disposition = None
    if len(structure) > extension + 1:
        value = structure[extension + 1]
        if isinstance(value, tuple | list) and value:
            disposition = _text(value[0])
    yield Leaf(media_type, disposition, structure[3] is not None)


def leaves_from_body_part(part: dict[str, Any]) -> Iterator[Leaf]:
    """Leaf parts of a JMAP EmailBodyPart tree (bodyStructure)."""
    sub_parts = part.get("subParts")
    if sub_parts:
        for sub in sub_parts:
            yield from leaves_from_body_part(sub)
        return
    media_type = str(part.get("type") or "text/plain").lower()
    if media_type == "message/rfc822":
        yield Leaf(media_type, "attachment", False)
        return
    disposition = part.get("disposition")
    yield Leaf(media_type, disposition.lower() if disposition else None, bool(part.get("cid")))
