"""The Sieve script that holds an account's VacationResponse (RFC 8621 §8).

Bridge keeps the JMAP object inside a script of its own (``SCRIPT_NAME``), as JSON on a
comment line, so VacationResponse/get reads back exactly what /set stored, whatever the
script around it says. When the response is on, the script is the active one and runs:

1. ``vacation`` (RFC 5230), inside ``currentdate`` tests (RFC 5260) for fromDate/toDate;
2. ``include :personal :optional`` of the script that was active before (RFC 6609), so
   the user's own rules keep running.

The reply comes first because an included script's ``stop`` ends all processing (RFC
6609 §3.2): rules like "fileinto Lists; stop;" would otherwise keep the very messages
they sort from being answered. ``vacation`` only queues the reply; where the message goes
is still decided by the user's rules, and RFC 5230's own checks (no replies to lists,
bulk or auto-submitted mail, one per sender per ``:days``) still apply. The price: mail
the user's rules discard is answered too.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP

import msgspec

from bridge.mime.dates import parse_utc_date
from bridge.mime.preview import html_to_text
from bridge.sieve.language import quote, string_list

SCRIPT_NAME = "jmap-vacation"
_MARKER = "# jmap-vacation-v1 "
# One reply per sender per week: RFC 5230 §4.1's suggested default.
DAYS = 7
DEFAULT_TEXT = "I am away at the moment and will read your message when I am back."
# RFC 8620 §1.4 UTCDate.
_BLANK_RUNS = re.compile(r"\n{3,}")


class VacationResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The object without its id, under its JSON names."""

    isEnabled: bool = False
    fromDate: str | None = None
    toDate: str | None = None
    subject: str | None = None
    textBody: str | None = None
    htmlBody: str | None = None


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """What the script's comment line holds: the object, and the script it includes."""

    response: VacationResponse
    include: str | None = None


_decoder = msgspec.json.Decoder(Stored)


def needed_extensions(response: VacationResponse, include: str | None) -> set[str]:
    needed = {"vacation"}
    if include is not None:
        needed.add("include")
    if response.fromDate is not None or response.toDate is not None:
        needed.update(("date", "relational"))
    return needed


def render(response: VacationResponse, include: str | None) -> str:
    """Bridge's script for ``response``; with it off, the stored object and nothing else."""
    stored = Stored(response=response, include=include if response.isEnabled else None)
    # JSON escapes every control character, so the comment cannot end early.
    lines = [
        "# Written by bridge: this account's JMAP VacationResponse (RFC 8621 §8).",
        "# Change it through JMAP: edits here are overwritten.",
        _MARKER + msgspec.json.encode(stored).decode(),
    ]
    if not response.isEnabled:
        return "\r\n".join(lines) + "\r\n"
    lines.append(f"require {string_list(sorted(needed_extensions(response, include)))};")
    action = _vacation_action(response)
    conditions = _date_conditions(response)
    if conditions:
        lines.append(f"if allof ({', '.join(conditions)}) {{")
        lines.append(f"    {action}")
        lines.append("}")
    else:
        lines.append(action)
    if include is not None:
        lines.append("# The rules that were active before, unchanged.")
        lines.append(f"include :personal :optional {quote(include)};")
    return "\r\n".join(lines) + "\r\n"


def read(script: str) -> Stored | None:
    """The stored object of one of bridge's scripts; None if ``script`` is not one."""
    # Lines end at LF only: the JSON may hold U+2028 and the like, which splitlines() splits at.
    for line in script.split("\n"):
        if line.startswith(_MARKER):
            try:
                return _decoder.decode(line[len(_MARKER) :].rstrip("\r"))
            except msgspec.DecodeError:
                return None
    return None


def _sieve_time(value: str) -> str:
    """A UTCDate as the start of ``currentdate``'s "iso8601" value in UTC, rounded up to
    the second (Sieve's resolution). The server's value goes on past the seconds (a zone,
    maybe a fraction), so it compares greater than this at the same second: "ge" makes
    fromDate inclusive and "lt" makes toDate exclusive, as RFC 8621 §8 wants."""
    moment = parse_utc_date(value)
    if moment is None:
        raise ValueError(f"not a UTCDate: {value!r}")
    if moment.microsecond:
        moment = datetime.fromtimestamp(math.ceil(moment.timestamp()), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _date_conditions(response: VacationResponse) -> list[str]:
    conditions = []
    for value, relation in ((response.fromDate, "ge"), (response.toDate, "lt")):
        if value is not None:
            moment = quote(_sieve_time(value))
            conditions.append(f'currentdate :zone "+0000" :value "{relation}" "iso8601" {moment}')
    return conditions


def _vacation_action(response: VacationResponse) -> str:
    # No :subject lets the server make one from the original's (RFC 5230 §4.3), which is
    # what RFC 8621 asks for when subject is null.
    subject = f":subject {quote(response.subject)} " if response.subject is not None else ""
    if response.htmlBody is None:
        reason = quote(response.textBody if response.textBody is not None else DEFAULT_TEXT)
        return f"vacation :days {DAYS} {subject}{reason};"
    return f"vacation :days {DAYS} {subject}:mime {quote(_mime_reason(response))};"


def _mime_reason(response: VacationResponse) -> str:
    """multipart/alternative of the text (made from the HTML when not given) and the
    HTML, quoted-printable so the reply is 7-bit whatever the text."""
    html = response.htmlBody or ""
    text = response.textBody
    if text is None:
        lines = (" ".join(line.split()) for line in html_to_text(html).splitlines())
        text = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip() + "\n"
    part = EmailMessage(policy=SMTP)
    part.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    part.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    # A fixed boundary per content: the same response renders the same script.
    digest = hashlib.sha256(f"{text}\0{html}".encode("utf-8", "surrogatepass")).hexdigest()
    part.set_boundary("=_" + digest[:24])
    for entity in (part, *part.iter_parts()):
        del entity["MIME-Version"]  # the server writes the reply's own
    return part.as_string()
