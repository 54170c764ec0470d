"""The shape of an Email to create (RFC 8621 §4.1, §4.6), checked before anything is
composed: every property has its type, every header value its syntax and a bounded length.

What fails here is the client's mistake and becomes invalidProperties naming the property;
compose can then trust what it is given. The length bound is on what one header field
would carry (``max_header_length`` octets before folding): the quadratic corners of header
handling, and the far ends of what servers downstream take (Postfix truncates a header
past 100 KiB), are out of reach, while a References of some three hundred ids still fits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bridge.mime.dates import parse_utc_date
from bridge.mime.header_property import HeaderProperty, parse_header_property

# RFC 5322 §3.6.4 msg-id without its <>: dot-atom-text "@" (dot-atom-text / no-fold-literal).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_MSG_ID = re.compile(rf"{_DOT_ATOM}@(?:{_DOT_ATOM}|\[[!-Z^-~]*\])")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)")
# Control characters (but tab), and lone surrogates, which no charset can write.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
# RFC 2045 §5.1 token, type "/" subtype; a Content-ID between its <> (RFC 2392).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MEDIA_TYPE = re.compile(rf"{_TOKEN.pattern}/{_TOKEN.pattern}")
_CONTENT_ID = re.compile(r"[!-;=?-~]+")
_PART_TOKENS = {"type": _MEDIA_TYPE, "charset": _TOKEN, "disposition": _TOKEN,
                "cid": _CONTENT_ID}  # fmt: skip
# Media types, charsets and Content-IDs are short (RFC 6838 §4.2: names of at most 127).
MAX_TOKEN = 256
# Nesting deeper than this is an attack, not a message (as bridge.mime.structure reads it).
MAX_DEPTH = 40

ADDRESS_PROPERTIES = ("from", "to", "cc", "bcc", "replyTo", "sender")
ID_PROPERTIES = ("messageId", "inReplyTo", "references")
BODY_PART_PROPERTIES = frozenset({
    "partId", "blobId", "size", "headers", "name", "type", "charset", "disposition", "cid",
    "language", "location", "subParts",
})  # fmt: skip
# A part's header fields that bridge writes from its properties when they are given: a
# header: property for one of them too would be a second value of one field (RFC 8621 §4.6).
_PART_FIELD_PROPERTIES = {
    "content-disposition": ("disposition", "name"), "content-id": ("cid",),
    "content-language": ("language",), "content-location": ("location",),
}  # fmt: skip
# Written by bridge for every part: Content-Transfer-Encoding is never the client's (RFC
# 8621 §4.6), and Content-Type carries the charset bridge encodes text in (the type
# property gives the rest).
_PART_FIELDS_FORBIDDEN = ("content-type", "content-transfer-encoding", "mime-version")


class InvalidProperty(ValueError):
    """The Email to create is malformed in ``prop``."""

    def __init__(self, prop: str, description: str) -> None:
        super().__init__(f"{prop}: {description}")
        self.prop = prop


def check_creation(obj: dict[str, Any], max_header_length: int) -> None:
    """InvalidProperty for the first property of ``obj`` that is not what RFC 8621 says
    it is. ``mailboxIds`` and ``keywords`` are the caller's to check (they need the
    account)."""
    header_text = _HeaderText(max_header_length)
    for prop in ADDRESS_PROPERTIES:
        _nullable(obj, prop, lambda value, prop=prop: _addresses(value, prop, header_text))
    for prop in ID_PROPERTIES:
        _nullable(obj, prop, lambda value, prop=prop: _message_ids(value, prop, header_text))
    _nullable(obj, "subject", lambda value: header_text(value, "subject"))
    _nullable(obj, "sentAt", lambda value: _date(value, "sentAt"))
    _nullable(obj, "receivedAt", _utc_date)
    _nullable(obj, "bodyValues", _body_values)
    for prop in ("textBody", "htmlBody", "attachments"):
        _nullable(obj, prop, lambda value, prop=prop: _parts(value, prop, header_text))
    _nullable(obj, "bodyStructure", lambda value: _part(value, "bodyStructure", header_text, 0))
    for prop, value in obj.items():
        if prop.startswith("header:"):
            _header_property(prop, value, header_text)


def _nullable(obj: dict[str, Any], prop: str, check: Callable[[Any], None]) -> None:
    value = obj.get(prop)
    if value is not None:
        check(value)


class _HeaderText:
    """A string bound for a header field: one line, no control characters, bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __call__(self, value: Any, prop: str, *, allow_empty: bool = True) -> str:
        if not isinstance(value, str):
            raise InvalidProperty(prop, "must be a string")
        if not value and not allow_empty:
            raise InvalidProperty(prop, "must not be empty")
        if _CONTROL.search(value):
            raise InvalidProperty(prop, "must be one line without control characters")
        self.bound(len(value.encode()), prop)
        return value

    def bound(self, length: int, prop: str) -> None:
        if length > self.limit:
            raise InvalidProperty(prop, f"is longer than {self.limit:,} octets")


def _list(value: Any, prop: str, *, allow_empty: bool = True) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidProperty(prop, "must be a list")
    if not value and not allow_empty:
        raise InvalidProperty(prop, "must not be empty")
    return value


def _addresses(value: Any, prop: str, header_text: _HeaderText) -> None:
    """EmailAddress[] (RFC 8621 §4.1.2.3): ``email`` a string, ``name`` a string or null."""
    total = 0
    for address in _list(value, prop):
        if not isinstance(address, dict) or set(address) - {"name", "email"}:
            raise InvalidProperty(prop, "must hold EmailAddress objects (name, email)")
        mail = header_text(address.get("email"), prop, allow_empty=False)
        if any(ch in mail for ch in ' <>,;"()\\') or mail.count("@") != 1:
            raise InvalidProperty(prop, "has an email that is not an address")
        if address.get("name") is not None:
            total += len(header_text(address["name"], prop).encode())
        total += len(mail) + 4
    header_text.bound(total, prop)


def _message_ids(value: Any, prop: str, header_text: _HeaderText) -> None:
    """String[] of msg-ids without their angle brackets (RFC 8621 §4.1.2.4)."""
    total = 0
    for msg_id in _list(value, prop, allow_empty=False):
        if not isinstance(msg_id, str) or not _MSG_ID.fullmatch(msg_id):
            raise InvalidProperty(prop, "must hold message ids (left@right, no <>)")
        total += len(msg_id) + 3
    header_text.bound(total, prop)


def _date(value: Any, prop: str) -> None:
    """RFC 3339 date-time with a time zone (RFC 8620 §1.4 Date)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise InvalidProperty(prop, "must be a Date with a time zone")
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidProperty(prop, "must be a Date with a time zone") from exc


def _utc_date(value: Any) -> None:
    if not isinstance(value, str) or parse_utc_date(value) is None:
        raise InvalidProperty("receivedAt", "must be a UTCDate")


def _body_values(value: Any) -> None:
    """partId -> EmailBodyValue (RFC 8621 §4.1.4): a string value, boolean flags."""
    if not isinstance(value, dict):
        raise InvalidProperty("bodyValues", "must map partIds to EmailBodyValues")
    for body_value in value.values():
        if not isinstance(body_value, dict) or not isinstance(body_value.get("value"), str):
            raise InvalidProperty("bodyValues", "each needs a string value")
        if set(body_value) - {"value", "isEncodingProblem", "isTruncated"}:
            raise InvalidProperty("bodyValues", "has unknown EmailBodyValue properties")
        for flag in ("isEncodingProblem", "isTruncated"):
            if not isinstance(body_value.get(flag, False), bool):
                raise InvalidProperty("bodyValues", f"{flag} must be a boolean")


def _parts(value: Any, prop: str, header_text: _HeaderText) -> None:
    for part in _list(value, prop):
        _part(part, prop, header_text, 0)


def _part(part: Any, prop: str, header_text: _HeaderText, depth: int) -> None:
    """An EmailBodyPart to create (RFC 8621 §4.1.4, §4.6)."""
    if not isinstance(part, dict):
        raise InvalidProperty(prop, "must hold EmailBodyPart objects")
    if depth > MAX_DEPTH:
        raise InvalidProperty(prop, f"nests deeper than {MAX_DEPTH} parts")
    unknown = [k for k in part if k not in BODY_PART_PROPERTIES and not k.startswith("header:")]
    if unknown:
        raise InvalidProperty(prop, f"unknown EmailBodyPart properties: {', '.join(unknown)}")
    for key in ("partId", "blobId"):
        if part.get(key) is not None:
            header_text(part[key], prop, allow_empty=False)
    if part.get("partId") is not None:
        if part.get("blobId") is not None:
            raise InvalidProperty(prop, "a part has a partId or a blobId, not both")
        for key in ("charset", "size"):
            if part.get(key) is not None:
                raise InvalidProperty(prop, f"a part with a partId has no {key}")
    for key in ("name", "location"):
        if part.get(key) is not None:
            header_text(part[key], prop)
    for key, syntax in _PART_TOKENS.items():
        if part.get(key) is not None and not _token(part[key], syntax):
            raise InvalidProperty(prop, f"{key} is not a {key}")
    if part.get("language") is not None:
        for tag in _list(part["language"], prop):
            if not _token(tag, _TOKEN):
                raise InvalidProperty(prop, "language holds language tags")
    if part.get("size") is not None and (type(part["size"]) is not int or part["size"] < 0):
        raise InvalidProperty(prop, "size must be an UnsignedInt")
    if "headers" in part:
        raise InvalidProperty(prop, "give each part header as its own header: property")
    seen: set[str] = set()
    for key, header_value in part.items():
        if not key.startswith("header:"):
            continue
        name = _header_property(key, header_value, header_text, prop).name.lower()
        if name in _PART_FIELDS_FORBIDDEN:
            raise InvalidProperty(prop, f"{key} cannot be given: bridge writes it")
        given = _PART_FIELD_PROPERTIES.get(name, ())
        if name in seen or any(part.get(k) is not None for k in given):
            raise InvalidProperty(prop, f"{key} gives a header field twice")
        seen.add(name)
    if part.get("subParts") is not None:
        for sub in _list(part["subParts"], prop):
            _part(sub, prop, header_text, depth + 1)


def _token(value: Any, syntax: re.Pattern[str]) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TOKEN and bool(syntax.fullmatch(value))


def header_values(key: str, value: Any) -> tuple[HeaderProperty, list[str]]:
    """A settable ``header:`` property already checked: what it names, and the value of
    each field it stands for (several for ``:all``)."""
    header = parse_header_property(key)
    assert header is not None
    return header, list(value) if header.all_instances else [value]


def _header_property(
    key: str, value: Any, header_text: _HeaderText, prop: str | None = None
) -> HeaderProperty:
    """``header:{name}[:as{Form}][:all]`` (RFC 8621 §4.1.3) in a form the field may take
    (§4.1.2): each value what that form reads back; a list of them for ``:all``."""
    prop = prop or key
    header = parse_header_property(key)
    if header is None:
        raise InvalidProperty(prop, f"{key} is no header property this field can have")
    values = _list(value, prop) if header.all_instances else [value]
    total = 0
    for one in values:
        if header.form in ("Raw", "Text"):
            total += _header_string(header, one, header_text, prop)
        else:
            _FORM_CHECKS[header.form](one, prop, header_text)
    header_text.bound(total, prop)
    return header


def _header_string(header: HeaderProperty, value: Any, header_text: _HeaderText, prop: str) -> int:
    """A Raw or Text value: one folded line; its length as a field."""
    if not isinstance(value, str):
        raise InvalidProperty(prop, f"header:{header.name} takes strings")
    unfolded = value.replace("\r\n ", " ").replace("\r\n\t", "\t")
    header_text(unfolded, prop)
    if header.form == "Raw" and len(header.name) + 1 + max(map(len, value.split("\r\n"))) > 998:
        raise InvalidProperty(prop, "has a line longer than 998 octets (RFC 5322 §2.1.1)")
    return len(header.name) + len(unfolded) + 3  # "Name:" and CRLF


def _grouped_addresses(value: Any, prop: str, header_text: _HeaderText) -> None:
    """EmailAddressGroup[] (RFC 8621 §4.1.2.4): a name or null, and EmailAddress[]."""
    for group in _list(value, prop):
        if not isinstance(group, dict) or set(group) != {"name", "addresses"}:
            raise InvalidProperty(prop, "must hold EmailAddressGroup objects (name, addresses)")
        if group["name"] is not None:
            header_text(group["name"], prop)
        _addresses(group["addresses"], prop, header_text)


def _urls(value: Any, prop: str, header_text: _HeaderText) -> None:
    """String[] of URLs without their angle brackets (RFC 8621 §4.1.2.7)."""
    for url in _list(value, prop):
        header_text(url, prop, allow_empty=False)
        if any(ch in url for ch in " <>,"):
            raise InvalidProperty(prop, "must hold URLs")


_FORM_CHECKS: dict[str, Callable[[Any, str, _HeaderText], None]] = {
    "Addresses": _addresses,
    "GroupedAddresses": _grouped_addresses,
    "MessageIds": _message_ids,
    "Date": lambda value, prop, _text: _date(value, prop),
    "URLs": _urls,
}
