"""Email/query's header sorts (from, to, subject, sentAt) over more than one folder,
answered from sort keys the cache keeps per Email (bridge.mail.sort_keys).

Keys are made when a summary is stored (a sync with PREVIEW, an Email/get); an Email
without them yet gets them here first, before the query's SQL orders by them: from its
cached summary, else from its four sorted header fields, fetched in bounded batches.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.imap.quoting import header_fields_item
from bridge.mail.account import Account
from bridge.mail.email_get import fetch_by_folder
from bridge.mail.sort_keys import keys_from_summary
from bridge.mail.summary import decode_summary, header_block
from bridge.mime import summary_from_headers

_HEADER_ITEMS = (header_fields_item(("FROM", "TO", "SUBJECT", "DATE")),)
# Keys are made for this many Emails a FETCH at most, so a first cross-folder sort of a
# large account runs as a series of bounded commands.
BATCH = 1000


def make_sort_keys(account: Account, missing: Sequence[str]) -> None:
    """Make the sort keys of Emails that have none yet: from the cached summary, or else
    from the four header fields fetched."""
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
