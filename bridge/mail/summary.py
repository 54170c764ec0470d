"""The list-view facts of an Email, parsed once per message and kept in the cache.

From a FETCH of BODY.PEEK[HEADER], BODYSTRUCTURE and PREVIEW (RFC 8970) where the server
has PREVIEW, else from the whole message: the convenience header properties, preview and
hasAttachment. Messages never change, so neither does their summary.
"""

from __future__ import annotations

import functools
import zlib
from typing import Any

import msgspec

from bridge.imap.quoting import header_fields_item
from bridge.mail.attachments import has_attachment_from_bodystructure
from bridge.mail.blobs import blob_id
from bridge.mime import (
    CONVENIENCE_HEADERS,
    email_properties,
    preview_from_text,
    summary_from_headers,
)

# Only the fields the summary reads: real mail carries kilobytes of Received, DKIM and ARC
# headers that a list view would otherwise download and parse fifty times over.
SUMMARY_FIELDS = tuple(name.upper() for name, _ in CONVENIENCE_HEADERS.values())
SUMMARY_ITEMS = (header_fields_item(SUMMARY_FIELDS), "BODYSTRUCTURE", "PREVIEW")
# Stored as a list in this order: the property names would be a fifth of the bytes.
FIELDS = (*CONVENIENCE_HEADERS, "hasAttachment", "preview")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Any])
# Decoded summaries kept for the list views of the moment (a few MB at most): the same
# page decoded anew on every request was a fifth of a warm page's CPU time.
SUMMARIES_KEPT = 4096


def encode_summary(summary: dict[str, Any]) -> bytes:
    # Deflated: a quarter smaller, which keeps the cache under a kilobyte a message.
    return zlib.compress(_encoder.encode([summary.get(name) for name in FIELDS]))


def decode_summary(data: bytes) -> dict[str, Any]:
    return dict(zip(FIELDS, _decoder.decode(zlib.decompress(data)), strict=False))


@functools.lru_cache(maxsize=SUMMARIES_KEPT)
def decoded_summary(data: bytes) -> dict[str, Any]:
    """``decode_summary``, remembered for the summaries read last (a summary never
    changes, and the same bytes decode the same). Shared by every caller: never change it."""
    return decode_summary(data)


def header_block(raw: dict[str, Any]) -> bytes | None:
    """The header section a FETCH brought (BODY[HEADER] or BODY[HEADER.FIELDS (...)])."""
    for key, value in raw.items():
        if key.startswith("BODY[HEADER") and isinstance(value, bytes):
            return value
    return None


def has_summary_items(raw: dict[str, Any]) -> bool:
    """Whether a FETCH of SUMMARY_ITEMS answered in full: not a smaller one (without
    BODYSTRUCTURE), nor with PREVIEW NIL, the server's "no preview to offer" (RFC 8970
    §3.1; Cyrus 3.6 answers it for every message): then the message itself is read."""
    return (
        "BODYSTRUCTURE" in raw and header_block(raw) is not None and raw.get("PREVIEW") is not None
    )


def summary_from_fetch(raw: dict[str, Any]) -> dict[str, Any]:
    summary = summary_from_headers(header_block(raw) or b"")
    summary["hasAttachment"] = has_attachment_from_bodystructure(raw.get("BODYSTRUCTURE"))
    preview = raw.get("PREVIEW")
    text = preview.decode("utf-8", "replace") if isinstance(preview, bytes) else ""
    summary["preview"] = preview_from_text(text)
    return summary


def summary_from_message(parsed: Any, email_id: str) -> dict[str, Any]:
    return email_properties(
        parsed, [*CONVENIENCE_HEADERS, "preview", "hasAttachment"],
        blob_id_for=lambda part: blob_id(email_id, part),
    )  # fmt: skip
