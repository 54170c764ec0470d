"""Email/query's header sorts (from, to, subject, sentAt) over more than one folder,
answered from sort keys the cache keeps per Email (bridge.mail.sort_keys).

Keys are made when a summary is stored (a sync with PREVIEW, an Email/get); an Email
without them yet gets them here first: from its cached summary, else from its four sorted
header fields, fetched in bounded batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bridge.imap.quoting import header_fields_item
from bridge.mail.account import Account
from bridge.mail.email_get import fetch_by_folder
from bridge.mail.sort_keys import keys_from_summary
from bridge.mail.summary import decode_summary, header_block
from bridge.mime import summary_from_headers
from bridge.store.records import SortKeys

_HEADER_ITEMS = (header_fields_item(("FROM", "TO", "SUBJECT", "DATE")),)
# Keys are made for this many Emails a FETCH at most, so a first cross-folder sort of a
# large account runs as a series of bounded commands.
BATCH = 1000


def sort_keys_of(account: Account, email_ids: Iterable[str]) -> dict[str, SortKeys]:
    """The sort keys of these Emails: from the cache, made first where missing, from the
    cached summary or else the four header fields fetched."""
    known = account.cache.sort_keys()
    missing = [email_id for email_id in email_ids if email_id not in known]
    for start in range(0, len(missing), BATCH):
        batch = missing[start : start + BATCH]
        records = account.cache.emails(batch)
        made = {
            email_id: keys_from_summary(decode_summary(record.summary))
            for email_id, record in records.items()
            if record.summary is not None
        }
        unread = [email_id for email_id in records if email_id not in made]
        for email_id, raw in fetch_by_folder(account, unread, _HEADER_ITEMS).items():
            made[email_id] = keys_from_summary(summary_from_headers(header_block(raw) or b""))
        account.cache.set_sort_keys(made)
        known.update(made)
    return known


def header_sort_key(
    prop: str, keys: dict[str, SortKeys], received_at: Callable[[str], int]
) -> Callable[[str], Any]:
    """The key an Email sorts by for ``prop``; the INTERNALDATE stands in for a missing
    Date (RFC 5256 §3)."""
    if prop == "sentAt":

        def sent(email_id: str) -> int:
            value = keys[email_id].sent_at
            return received_at(email_id) if value is None else value

        return sent
    field = {"from": "from_", "to": "to", "subject": "subject"}[prop]
    return lambda email_id: getattr(keys[email_id], field)
