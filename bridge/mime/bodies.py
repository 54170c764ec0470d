"""textBody, htmlBody and attachments from a body structure: the algorithm RFC 8621 §4.1.4
suggests, transcribed from its JavaScript, and hasAttachment.

The functions work on anything with ``type``, ``disposition``, ``name``, ``cid`` and
``subparts`` attributes, so a tree built from IMAP BODYSTRUCTURE gives the same answers as
one built from the message bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class BodyPart(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def disposition(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def cid(self) -> str | None: ...
    @property
    def subparts(self) -> Sequence[BodyPart]: ...


P = TypeVar("P", bound=BodyPart)


def is_inline_media_type(mime_type: str) -> bool:
    return mime_type.startswith(("image/", "audio/", "video/"))


def _parse_structure(
    parts: Sequence[P],
    multipart_type: str,
    in_alternative: bool,
    html_body: list[P] | None,
    text_body: list[P] | None,
    attachments: list[P],
) -> None:
    # None stands for the JavaScript null: a list this level has stopped filling. An empty
    # list is still a list (JavaScript's [] is truthy), hence the "is not None" tests.
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1

    for index, part in enumerate(parts):
        is_multipart = part.type.startswith("multipart/")
        is_inline = (
            part.disposition != "attachment"
            and (part.type in ("text/plain", "text/html") or is_inline_media_type(part.type))
            and (
                index == 0
                or (
                    multipart_type != "related"
                    and (is_inline_media_type(part.type) or not part.name)
                )
            )
        )
        if is_multipart:
            sub_multi_type = part.type.split("/")[1]
            _parse_structure(
                part.subparts,
                sub_multi_type,
                in_alternative or sub_multi_type == "alternative",
                html_body,
                text_body,
                attachments,
            )
        elif is_inline:
            if multipart_type == "alternative":
                # The JavaScript would throw on a null list here (an alternative nested in a
                # part of another alternative); listing the part as an attachment keeps it
                # reachable, as the definition of attachments asks.
                if part.type == "text/plain" and text_body is not None:
                    text_body.append(part)
                elif part.type == "text/html" and html_body is not None:
                    html_body.append(part)
                else:
                    attachments.append(part)
                continue
            if in_alternative:
                if part.type == "text/plain":
                    html_body = None
                if part.type == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and is_inline_media_type(part.type):
                attachments.append(part)
        else:
            attachments.append(part)

    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        # Found an HTML part only
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])
        # Found a plain text part only
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])


def split_body(root: P) -> tuple[list[P], list[P], list[P]]:
    """(textBody, htmlBody, attachments) for the body structure ``root``."""
    text_body: list[P] = []
    html_body: list[P] = []
    attachments: list[P] = []
    _parse_structure([root], "mixed", False, html_body, text_body, attachments)
    return text_body, html_body, attachments


def has_attachment(attachments: Sequence[BodyPart]) -> bool:
    """RFC 8621 §4.1.4: an attachment not marked inline. A part with a Content-ID and no
    disposition is taken as an image embedded in the HTML (which the spec lets us ignore),
    not as something the user would download."""
    return any(
        part.disposition != "inline" and not (part.cid and part.disposition is None)
        for part in attachments
    )
