"""RFC 5322 date-time (with the §4.3 obsolete forms) to the JMAP ``Date`` type.

JMAP's ``Date`` is an RFC 3339 date-time that keeps its offset (RFC 8620 §1.4), so the
sender's offset is kept rather than converted to UTC. Offsets that carry no information
(``-0000``, military zones, unknown names, or none at all) become ``Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from bridge.mime.headers import strip_comments

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_ZONES = {
    "ut": 0,
    "utc": 0,
    "gmt": 0,
    "z": 0,
    "edt": -4 * 60,
    "est": -5 * 60,
    "cdt": -5 * 60,
    "cst": -6 * 60,
    "mdt": -6 * 60,
    "mst": -7 * 60,
    "pdt": -7 * 60,
    "pst": -8 * 60,
}
_DATE_TIME = re.compile(
    r"""
    (?:[a-z]+\s*,?\s*)?                      # day of week, comma sometimes missing
    (\d{1,2})\s*-?\s*([a-z]{3})[a-z]*\.?\s*-?\s*(\d{2,4})\s+
    (\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2})(?:[.,]\d+)?)?
    \s*(?:([+-])(\d{2}):?(\d{2})|([a-z]+))?
    """,
    re.IGNORECASE | re.VERBOSE,
)


def parse_date(value: str) -> str | None:
    """The ``Date`` for a Date header field value, or None if it is not a date."""
    match = _DATE_TIME.match(strip_comments(value).strip())
    if match is None:
        return None
    day, month_name, year_text, hour, minute, second, sign, off_h, off_m, zone = match.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        return None
    year = int(year_text)
    if len(year_text) == 2:
        year += 2000 if year < 50 else 1900
    elif len(year_text) == 3:
        year += 1900
    offset = 0
    if sign:
        if int(off_m) >= 60:
            return None
        offset = (int(off_h) * 60 + int(off_m)) * (-1 if sign == "-" else 1)
    elif zone:
        offset = _ZONES.get(zone.lower(), 0)
    try:
        moment = datetime(
            year,
            month,
            int(day),
            int(hour),
            int(minute),
            min(int(second or 0), 59),  # a leap second is not representable
            tzinfo=timezone(timedelta(minutes=offset)),
        )
    except (ValueError, OverflowError):
        return None
    return format_date(moment)


def format_date(moment: datetime) -> str:
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    if minutes == 0:
        return text + "Z"
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{mins:02d}"


_UTC_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z", re.ASCII)


def parse_utc_date(value: str) -> datetime | None:
    """A JMAP UTCDate (RFC 8620 §1.4) as an aware datetime, or None if ``value`` is not
    one (a fraction of a second is kept to the microsecond)."""
    match = _UTC_DATE.fullmatch(value)
    if match is None:
        return None
    fraction = (match.group(7) or "")[:6].ljust(6, "0")
    try:
        return datetime(*(int(g) for g in match.groups()[:6]), int(fraction), tzinfo=UTC)
    except ValueError:
        return None
