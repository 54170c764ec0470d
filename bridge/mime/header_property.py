"""``header:{name}[:as{form}][:all]`` property names (RFC 8621 §4.1.3) and which forms each
field may be fetched in (§4.1.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.mime.forms import FORMS

_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")

_ADDRESS_FIELDS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "resent-from",
        "resent-sender",
        "resent-reply-to",
        "resent-to",
        "resent-cc",
        "resent-bcc",
    }
)
_URL_FIELDS = frozenset(
    {"list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive"}
)
# Fields defined by RFC 5322 or RFC 2369 may only be parsed in the forms listed for them;
# any other field may be parsed in every form.
_ALLOWED: dict[str, frozenset[str]] = {
    **{name: frozenset({"Addresses", "GroupedAddresses"}) for name in _ADDRESS_FIELDS},
    **{name: frozenset({"URLs"}) for name in _URL_FIELDS},
    "subject": frozenset({"Text"}),
    "comments": frozenset({"Text"}),
    "keywords": frozenset({"Text"}),
    "message-id": frozenset({"MessageIds"}),
    "in-reply-to": frozenset({"MessageIds"}),
    "references": frozenset({"MessageIds"}),
    "resent-message-id": frozenset({"MessageIds"}),
    "date": frozenset({"Date"}),
    "resent-date": frozenset({"Date"}),
    "return-path": frozenset(),
    "received": frozenset(),
}


@dataclass(frozen=True, slots=True)
class HeaderProperty:
    """A parsed ``header:`` property; ``name`` keeps the requested capitalisation."""

    name: str
    form: str = "Raw"
    all_instances: bool = False


def form_allowed(name: str, form: str) -> bool:
    if form == "Raw":
        return True
    if form not in FORMS:
        return False
    allowed = _ALLOWED.get(name.lower())
    return allowed is None or form in allowed


def parse_header_property(prop: str) -> HeaderProperty | None:
    """The header property ``prop`` names, or None if it is malformed or asks for a form the
    field may not take (the caller answers invalidArguments)."""
    pieces = prop.split(":")
    if len(pieces) < 2 or len(pieces) > 4 or pieces[0] != "header":
        return None
    name, suffixes = pieces[1], pieces[2:]
    if not _NAME.fullmatch(name):
        return None
    all_instances = bool(suffixes) and suffixes[-1] == "all"
    if all_instances:
        suffixes = suffixes[:-1]
    form = "Raw"
    if suffixes:
        if len(suffixes) > 1 or not suffixes[0].startswith("as"):
            return None
        form = suffixes[0][2:]
    if not form_allowed(name, form):
        return None
    return HeaderProperty(name, form, all_instances)
