"""The header sorts of Email/query across folders: keys made once per Email, when its
summary is stored, that order as the upstream's SORT orders within one folder.

``subject`` is RFC 5256 §2.1's base subject; ``from`` and ``to`` are RFC 5957's
DISPLAYFROM and DISPLAYTO (the first address's display name, else its address), which is
what bridge asks the upstream for within one folder; texts compare by ``i;unicode-casemap``
(RFC 5051): each character by its simple titlecase, then decomposed (NFKD), compared by
code point as UTF-8 compares by octet. ``sentAt`` is the Date header; a message without
a usable one sorts by its INTERNALDATE (RFC 5256 §3), which the query supplies.

Dovecot decomposes a few compatibility characters differently (it keeps "㎏" and the
titlecase digraphs such as "ǅ" whole): Emails differing only there may order differently
across folders than Dovecot orders them within one.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from bridge.mail.threading import uncased_base_subject
from bridge.store.records import SortKeys


def unicode_casemap(text: str) -> str:
    """``text`` prepared for i;unicode-casemap (RFC 5051 §2): simple titlecase mappings
    only (a character whose titlecase is longer, like "ß", stays), then decomposition."""
    if text.isascii():
        return text.upper()  # the same, at a fiftieth of the cost: most headers are ASCII
    return casemap_any(text)


def casemap_any(text: str) -> str:
    """``unicode_casemap`` by the rule itself, for text of any script."""
    titled = "".join(t if len(t := ch.title()) == 1 else ch for ch in text)
    return unicodedata.normalize("NFKD", titled)


def _display(addresses: Any) -> str:
    if not addresses:
        return ""
    first = addresses[0]
    return unicode_casemap(first.get("name") or first.get("email") or "")


def _seconds(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def keys_from_summary(summary: dict[str, Any]) -> SortKeys:
    """From a list-view summary (or any dict with from, to, subject and sentAt, and
    perhaps hasAttachment)."""
    has_attachment = summary.get("hasAttachment")
    return SortKeys(
        from_=_display(summary.get("from")),
        to=_display(summary.get("to")),
        subject=unicode_casemap(uncased_base_subject(summary.get("subject") or "")),
        sent_at=_seconds(summary.get("sentAt")),
        has_attachment=has_attachment if isinstance(has_attachment, bool) else None,
    )
