"""The parsed forms of a header field value (RFC 8621 §4.1.2).

Every function takes one field's value as it follows the colon and never fails: a value
that cannot be parsed gives the form's null (or, for Addresses, whatever could be salvaged).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from bridge.mime.addresses import parse_addresses, parse_grouped_addresses
from bridge.mime.dates import parse_date
from bridge.mime.encodedword import decode_encoded_words
from bridge.mime.headers import Header, find_all, strip_comments, unfold

_BRACKETED = re.compile(r"<([^<>]*)>")
_WHITESPACE = re.compile(r"\s+")


def as_raw(value: str) -> str:
    return value.replace("\x00", "")


def as_text(value: str) -> str:
    text = decode_encoded_words(unfold(value).lstrip(" "))
    return unicodedata.normalize("NFC", text)


def as_addresses(value: str) -> list[dict[str, Any]]:
    return parse_addresses(unfold(value))


def as_grouped_addresses(value: str) -> list[dict[str, Any]]:
    return parse_grouped_addresses(unfold(value))


def as_message_ids(value: str) -> list[str] | None:
    """Message ids without their <>; obsolete phrases between them are skipped. A bare id
    without brackets is accepted when it is the whole value, as some generators write it."""
    text = strip_comments(unfold(value))
    if "<" not in text:
        words = text.split()
        if len(words) == 1 and "@" in words[0] and ">" not in words[0]:
            return words
        return None
    ids = [_WHITESPACE.sub("", inner) for inner in _BRACKETED.findall(text)]
    ids = [msg_id for msg_id in ids if msg_id]
    return ids or None


def as_date(value: str) -> str | None:
    return parse_date(unfold(value))


def as_urls(value: str) -> list[str] | None:
    """RFC 2369 §2: <>-bracketed URLs; white space inside them is folding and not part of them."""
    text = strip_comments(unfold(value))
    urls = [_WHITESPACE.sub("", inner) for inner in _BRACKETED.findall(text)]
    urls = [url for url in urls if url]
    return urls or None


FORMS: dict[str, Callable[[str], Any]] = {
    "Raw": as_raw,
    "Text": as_text,
    "Addresses": as_addresses,
    "GroupedAddresses": as_grouped_addresses,
    "MessageIds": as_message_ids,
    "Date": as_date,
    "URLs": as_urls,
}


def form_value(header: Header, form: str) -> Any:
    """One header field in ``form``; Raw keeps the octets, the others read them leniently."""
    if form == "Raw":
        return header.raw
    return FORMS[form](header.text)


def header_value(
    headers: Sequence[Header], name: str, form: str = "Raw", all_instances: bool = False
) -> Any:
    """``header:{name}:as{form}[:all]``: the last instance, or with ``all_instances`` every
    one in order. Absent fields give None, or [] for all instances.
    """
    return instances_value(find_all(headers, name), form, all_instances)


def instances_value(found: Sequence[Header], form: str, all_instances: bool = False) -> Any:
    """header_value of the instances of one field, already found."""
    if all_instances:
        return [form_value(header, form) for header in found]
    return form_value(found[-1], form) if found else None
