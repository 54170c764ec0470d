"""The MIME fields of one entity: Content-Type, Content-Disposition, Content-Transfer-Encoding,
Content-ID, Content-Language and Content-Location, reduced to what RFC 8621 §4.1.4 reports.

Parameter parsing, including RFC 2231 continuations, is left to ``email.message.Message``
(compat32); the type and disposition tokens are taken here because compat32 keeps comments
in them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message

from bridge.mime.charset import decode_bytes
from bridge.mime.encodedword import decode_encoded_words
from bridge.mime.headers import Header, find_last, strip_comments

_TYPE = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+/[!#$%&'*+\-.^_`|~0-9a-z]+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class MimeFields:
    type: str
    charset: str | None
    boundary: str | None
    name: str | None
    disposition: str | None
    cid: str | None
    language: list[str] | None
    location: str | None
    transfer_encoding: str


def _token(value: str) -> str:
    """The value before its parameters, without comments or white space, lower-cased."""
    return _SPACE.sub("", strip_comments(value).split(";", 1)[0]).lower()


def _param(message: Message, param: str, field: str) -> str | None:
    try:
        value = message.get_param(param, header=field)
    except Exception:  # compat32 parameter parsing has no documented failure modes
        return None
    if value is None:
        return None
    if isinstance(value, tuple):  # RFC 2231 extended value: (charset, language, text)
        charset, _, text = value
        try:
            octets = text.encode("latin-1")  # the %-decoded octets, one per code point
        except UnicodeEncodeError:
            return text
        return decode_bytes(octets, charset or "us-ascii")[0]
    return str(value)


def _decoded_name(value: str | None) -> str | None:
    if value is None:
        return None
    # Filenames in RFC 2047 encoded-words are non-standard but what most clients send.
    value = decode_encoded_words(value).strip()
    return value or None


def mime_fields(headers: Sequence[Header], default_type: str = "text/plain") -> MimeFields:
    """What the headers of one entity say; ``default_type`` applies when Content-Type is
    absent or unusable (RFC 2045 §5.2), and is message/rfc822 inside multipart/digest."""
    message = Message()
    content_type = find_last(headers, "Content-Type")
    disposition_field = find_last(headers, "Content-Disposition")
    if content_type is not None:
        message["Content-Type"] = content_type.text
    if disposition_field is not None:
        message["Content-Disposition"] = disposition_field.text

    # A Content-Type that does not parse counts as absent, parameters and all.
    declared = _token(content_type.text) if content_type is not None else ""
    explicit = _TYPE.fullmatch(declared) is not None
    mime_type = declared if explicit else default_type
    charset = None
    if mime_type.startswith("text/"):
        declared_charset = _param(message, "charset", "content-type") if explicit else None
        charset = (declared_charset or "").strip() or "us-ascii"

    boundary = _param(message, "boundary", "content-type") if explicit else None
    name = _decoded_name(_param(message, "filename", "content-disposition"))
    if name is None and explicit:
        name = _decoded_name(_param(message, "name", "content-type"))

    disposition = _token(disposition_field.text) if disposition_field is not None else None

    cid_field = find_last(headers, "Content-ID")
    cid = None
    if cid_field is not None:
        cid = _SPACE.sub("", strip_comments(cid_field.text)).strip("<>") or None

    language_field = find_last(headers, "Content-Language")
    language = None
    if language_field is not None:
        tags = [_SPACE.sub("", tag) for tag in strip_comments(language_field.text).split(",")]
        language = [tag for tag in tags if tag] or None

    location_field = find_last(headers, "Content-Location")
    location = None
    if location_field is not None:
        # No comment stripping: parentheses are legal in URIs.
        location = _SPACE.sub("", location_field.text).strip('"') or None

    cte_field = find_last(headers, "Content-Transfer-Encoding")
    transfer_encoding = _token(cte_field.text) if cte_field is not None else ""

    return MimeFields(
        type=mime_type,
        charset=charset,
        boundary=boundary or None,
        name=name,
        disposition=disposition or None,
        cid=cid,
        language=language,
        location=location,
        transfer_encoding=transfer_encoding,
    )
