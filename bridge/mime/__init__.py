"""Messages as JMAP Email objects: MIME parsing and the properties RFC 8621 §4 derives from a
message's bytes. Pure functions, no I/O but reading a file the caller hands in (a large
message parses from one a window at a time: ``bridge.mime.source``); nothing here raises on
malformed mail.

Part ids are IMAP section numbers, so a part's body can be fetched with
``BODY.PEEK[<partId>]``; see ``bridge.mime.structure`` for the exact scheme.
"""

from __future__ import annotations

from bridge.mime.bodies import has_attachment, is_inline_media_type, split_body
from bridge.mime.email_object import (
    BODY_DERIVED_PROPERTIES,
    BODY_PART_PROPERTIES,
    CONVENIENCE_HEADERS,
    DEFAULT_BODY_PROPERTIES,
    EMAIL_PROPERTIES,
    email_properties,
    header_properties,
    summary_from_headers,
    truncate_value,
)
from bridge.mime.forms import (
    as_addresses,
    as_date,
    as_grouped_addresses,
    as_message_ids,
    as_raw,
    as_text,
    as_urls,
    header_value,
)
from bridge.mime.header_property import HeaderProperty, form_allowed, parse_header_property
from bridge.mime.headers import Header, parse_header_block
from bridge.mime.preview import html_to_text, preview_from_text
from bridge.mime.structure import MimePart, ParsedMessage, parse_message

__all__ = [
    "BODY_DERIVED_PROPERTIES",
    "BODY_PART_PROPERTIES",
    "CONVENIENCE_HEADERS",
    "DEFAULT_BODY_PROPERTIES",
    "EMAIL_PROPERTIES",
    "Header",
    "HeaderProperty",
    "MimePart",
    "ParsedMessage",
    "as_addresses",
    "as_date",
    "as_grouped_addresses",
    "as_message_ids",
    "as_raw",
    "as_text",
    "as_urls",
    "email_properties",
    "form_allowed",
    "has_attachment",
    "header_properties",
    "header_value",
    "html_to_text",
    "is_inline_media_type",
    "parse_header_block",
    "parse_header_property",
    "parse_message",
    "preview_from_text",
    "split_body",
    "summary_from_headers",
    "truncate_value",
]
