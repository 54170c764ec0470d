"""The one path by which client-supplied strings reach the IMAP wire.

Every function here returns a command fragment in wire syntax. A string that cannot be a
quoted string becomes a literal, rendered in its synchronizing form ``{n}\\r\\n<bytes>``;
the command sender (``wire.py``) splits a command at those markers and either waits for
the server's continuation or, with LITERAL+/LITERAL-, rewrites them to ``{n+}``. That split
is unambiguous because nothing else in a command may hold CR or LF: quoted strings and
atoms never do, and the sender refuses a command where a CR, LF or NUL is not inside a
literal, so an injection attempt fails loudly even if some caller forgot to quote.

Decisions:
- Quoted strings carry only printable ASCII (0x20-0x7E). Everything else, including tabs
  and other controls that RFC 3501 would allow inside quotes, goes in a literal: several
  servers mishandle them, and a literal is always valid where an astring is.
- NUL is rejected everywhere: RFC 3501 literals (CHAR8) exclude it and LITERAL8 is not used.
- CR and LF in free text (search text, header values) travel inside a literal. In a mailbox
  name or a keyword they are rejected: no server accepts them, and a name that holds them is
  far more likely an injection attempt than a real folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from imapclient import imap_utf7

# Long values go in a literal even when printable, to keep command lines short.
MAX_QUOTED = 1024

_QUOTABLE = re.compile(rb"[\x20-\x7e]*")
# RFC 3501 ATOM-CHAR: any CHAR except atom-specials "(" ")" "{" SP CTL "%" "*" '"' "\" "]".
_ATOM = re.compile(r"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")
# RFC 5322 field-name (printable ASCII except ":"), less "[" and "]": a bracket inside a
# section spec confuses response parsers, imapclient's among them.
_FIELD_NAME = re.compile(r"[!-9;-Z\\^-~]+")
# RFC 6154 use-attr: "\" atom (the flag-extension syntax).
_SPECIAL_USE = re.compile(r"\\" + _ATOM.pattern)


def _to_bytes(value: str | bytes) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates
            raise ValueError("string is not valid Unicode") from exc
    return bytes(value)


def literal(value: str | bytes) -> bytes:
    """``value`` as a synchronizing literal fragment (UTF-8 for text)."""
    data = _to_bytes(value)
    if b"\x00" in data:
        raise ValueError("NUL cannot be sent to an IMAP server")
    return b"{%d}\r\n" % len(data) + data


def quoted(value: str | bytes) -> bytes:
    """``value`` as a quoted string; ValueError if it holds anything but printable ASCII."""
    data = _to_bytes(value)
    if not _QUOTABLE.fullmatch(data):
        raise ValueError("only printable ASCII can be quoted")
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def astring(value: str | bytes) -> bytes:
    """A quoted string when that is safe, else a literal. Text is sent as UTF-8."""
    data = _to_bytes(value)
    if len(data) <= MAX_QUOTED and _QUOTABLE.fullmatch(data):
        return quoted(data)
    return literal(data)


# Printable ASCII but "&": the names modified UTF-7 (RFC 3501 §5.1.3) does not change.
_PLAIN_NAME = re.compile(r"[\x20-\x25\x27-\x7e]*")
_PLAIN_NAME_BYTES = re.compile(rb"[\x20-\x25\x27-\x7e]*")


def mailbox_name(name: str) -> bytes:
    """A mailbox name in modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    if any(ch in name for ch in "\r\n\x00"):
        raise ValueError("a mailbox name cannot contain CR, LF or NUL")
    if _PLAIN_NAME.fullmatch(name):
        return astring(name.encode("ascii"))  # modified UTF-7 leaves these as they are
    try:
        encoded = imap_utf7.encode(name)
    except UnicodeEncodeError as exc:
        raise ValueError("mailbox name is not valid Unicode") from exc
    return astring(encoded)


def decode_mailbox_name(raw: bytes) -> str:
    """The inverse of ``mailbox_name``'s encoding; ValueError unless ``raw`` is canonical
    modified UTF-7. imapclient's decoder is lenient, so the name must also encode back to
    ``raw``: a name that does not would address a different folder on its next use."""
    if _PLAIN_NAME_BYTES.fullmatch(raw):
        return raw.decode("ascii")
    try:
        name = imap_utf7.decode(raw)
        canonical = imap_utf7.encode(name) == raw
    except (ValueError, UnicodeError) as exc:
        raise ValueError("mailbox name is not modified UTF-7") from exc
    if not canonical:
        raise ValueError("mailbox name is not canonical modified UTF-7")
    return name


def atom_keyword(keyword: str) -> bytes:
    """A flag keyword (RFC 3501 flag-keyword = atom), validated."""
    if not _ATOM.fullmatch(keyword):
        raise ValueError(f"not a valid IMAP keyword: {keyword!r}")
    return keyword.encode("ascii")


def special_use(attribute: str) -> bytes:
    """A special-use attribute such as ``\\Drafts`` (RFC 6154), validated."""
    if not _SPECIAL_USE.fullmatch(attribute):
        raise ValueError(f"not a valid special-use attribute: {attribute!r}")
    return attribute.encode("ascii")


def gmail_label(label: str) -> bytes:
    """A label for Gmail's X-GM-LABELS: a system label (``\\Inbox``, ``\\Starred``) as its
    atom, a user label by its name, encoded as ``mailbox_name`` encodes folder names (Gmail
    names a label and its folder alike)."""
    if _SPECIAL_USE.fullmatch(label):
        return label.encode("ascii")
    return mailbox_name(label)


def header_field_name(name: str) -> bytes:
    """A header field name for HEADER.FIELDS: an atom when it is one, else quoted."""
    if not _FIELD_NAME.fullmatch(name):
        raise ValueError(f"not a valid header field name: {name!r}")
    return name.encode("ascii") if _ATOM.fullmatch(name) else quoted(name)


def header_fields_item(names: Iterable[str], *, peek: bool = True, exclude: bool = False) -> str:
    """A FETCH item ``BODY.PEEK[HEADER.FIELDS (A B)]`` for client-chosen header names."""
    rendered = b" ".join(header_field_name(name) for name in names)
    if not rendered:
        raise ValueError("HEADER.FIELDS needs at least one name")
    section = "HEADER.FIELDS.NOT" if exclude else "HEADER.FIELDS"
    body = "BODY.PEEK" if peek else "BODY"
    return f"{body}[{section} ({rendered.decode('ascii')})]"
