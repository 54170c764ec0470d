"""What sending a message over SMTP needs of it (RFC 8621 §7.5): the envelope its header
fields imply, the message without its Bcc fields, and whether an address can stand in
MAIL FROM or RCPT TO at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bridge.mime.addresses import parse_addresses
from bridge.mime.headers import Header, find_all, parse_header_block

# RFC 5321 §4.1.2 Mailbox, with RFC 6531's UTF-8 in local parts and domain labels. No
# white space or control character can match, so an address never breaks a command line.
_UTF8 = "\u00a0-\U0010ffff"
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~{_UTF8}-]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*"'
_LABEL = rf"[A-Za-z0-9{_UTF8}](?:[A-Za-z0-9{_UTF8}-]*[A-Za-z0-9{_UTF8}])?"
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_MAILBOX = re.compile(rf"(?:{_DOT_STRING}|{_QUOTED})@(?:{_LABEL}(?:\.{_LABEL})*|{_LITERAL})")
# RFC 5321 §4.5.3.1: 64 octets of local part, 256 of path (with its angle brackets).
MAX_LOCAL_PART = 64
MAX_PATH = 254

_BCC_FIELD = re.compile(rb"bcc[ \t]*:", re.IGNORECASE)
_LINE_END = re.compile(rb"\r?\n")
RECIPIENT_FIELDS = ("to", "cc", "bcc")


class EnvelopeError(ValueError):
    """The header fields imply no envelope; ``properties`` names the Email properties."""

    def __init__(self, description: str, properties: list[str]) -> None:
        super().__init__(description)
        self.properties = properties


def is_mailbox(value: object) -> bool:
    """Whether ``value`` is an address SMTP can carry (a Mailbox of RFC 5321)."""
    if not isinstance(value, str) or not _MAILBOX.fullmatch(value):
        return False
    local = value.rsplit("@", 1)[0]
    return len(local.encode()) <= MAX_LOCAL_PART and len(value.encode()) <= MAX_PATH


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower()


def header_fields(raw: bytes) -> list[Header]:
    return parse_header_block(raw)[0]


def field_addresses(headers: Sequence[Header], name: str) -> list[str]:
    """Every address in every field of that name, in order."""
    return [
        address["email"]
        for header in find_all(headers, name)
        for address in parse_addresses(header.text)
    ]


def envelope_sender(headers: Sequence[Header]) -> str:
    """RFC 8621 §7.5: the address in the Sender field, else the one in the From field.
    Several fields, or several addresses in the one field, make the choice ambiguous."""
    for name in ("sender", "from"):
        fields = find_all(headers, name)
        if not fields:
            continue
        addresses = parse_addresses(fields[-1].text)
        if len(fields) > 1 or len(addresses) != 1:
            raise EnvelopeError(f"the {name} header must hold exactly one address", [name])
        return str(addresses[0]["email"])
    raise EnvelopeError("the Email has no From header", ["from"])


def envelope_recipients(headers: Sequence[Header]) -> list[str]:
    """RFC 8621 §7.5: the To, Cc and Bcc addresses, each once (compared without case)."""
    found: dict[str, str] = {}
    for name in RECIPIENT_FIELDS:
        for address in field_addresses(headers, name):
            found.setdefault(address.casefold(), address)
    return list(found.values())


def for_transport(raw: bytes) -> bytes:
    """The message as it goes to SMTP: without Bcc fields, which would tell every
    recipient who was blind-copied (RFC 8621 §7.5), and with CRLF line ends only."""
    _, body_start = parse_header_block(raw)
    kept: list[bytes] = []
    in_bcc = False
    for line in raw[:body_start].splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):
            in_bcc = _BCC_FIELD.match(line) is not None
        if not in_bcc:
            kept.append(line)
    return _LINE_END.sub(b"\r\n", b"".join(kept) + raw[body_start:])
