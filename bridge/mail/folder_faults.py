"""Folders the upstream lists but will not open, kept from failing the rest of the account.

A folder LIST shows as selectable can still refuse STATUS and SELECT: Dovecot keeps
listing a folder another client deleted while it had children, a permission or a broken
file on the server does the same, and a folder can vanish between LIST and SELECT. Such a
folder is skipped by the sync, the indexer and a request's SELECT, logged once when it
turns unreadable, and kept in the cache as NO_RIGHTS says until LIST shows it readable.
"""

from __future__ import annotations

import logging

import msgspec

from bridge.imap.errors import CommandFailed
from bridge.imap.models import MailboxListing
from bridge.store.base import Store
from bridge.store.records import MailboxRecord

log = logging.getLogger("bridge.sync")

# The ACL letters of a folder LIST shows as selectable but bridge cannot read (STATUS or
# SELECT refused: deleted by another client while it had children, no permission, broken
# on the server): none. Such a folder stays in the tree, so its children keep their
# parentId (RFC 8621 §2), unselectable, empty and with every myRights false; the rest of
# the account works on. It is read again once LIST shows it readable.
NO_RIGHTS = ""
# Refusals of a SELECT that say "not now" rather than "not this folder".
_PASSING_CODES = {"UNAVAILABLE", "INUSE", "LIMIT"}


def readable(listing: MailboxListing) -> bool:
    """Selectable, and STATUS answered for it (a LIST-STATUS without a STATUS for a folder,
    or a refused STATUS, leaves ``status`` None)."""
    return listing.selectable and listing.status is not None


def unreadable(record: MailboxRecord) -> bool:
    """Whether the cache holds ``record`` as a folder bridge cannot read (see NO_RIGHTS)."""
    return not record.selectable and record.rights == NO_RIGHTS


def refuses_folder(exc: CommandFailed) -> bool:
    """Whether ``exc`` is a SELECT/EXAMINE refused for the folder itself (gone since LIST,
    no permission), not for a passing state of the server, which the next request retries."""
    return (
        exc.command in ("SELECT", "EXAMINE")
        and exc.status == "NO"
        and exc.code not in _PASSING_CODES
    )


def mark_unreadable(cache: Store, record: MailboxRecord, exc: CommandFailed) -> set[str]:
    """Keep ``record`` as a folder that cannot be read: its STATUS stays as LIST last showed
    it, and the folder is tried again when that moves. Runs inside the caller's transaction;
    returns the Emails the folder held (see ``Store.purge_orphans``)."""
    kept = msgspec.structs.replace(record, selectable=False, rights=NO_RIGHTS)
    cache.update_mailbox(record, kept)
    log_unreadable(record.id, str(exc))
    return without_contents(cache, record.id)


def log_unreadable(mailbox_id: str, reason: str) -> None:
    """Said once per folder, when it turns unreadable."""
    # The id, not the name: folder names are the user's private data.
    log.warning("folder %s cannot be read upstream (%s); kept empty until it can",
                mailbox_id, reason)  # fmt: skip


def without_contents(cache: Store, mailbox_id: str) -> set[str]:
    """Forget what a folder that turned unreadable held; returns the Emails it held."""
    known = cache.locations(mailbox_id)
    cache.apply_folder_delta(mailbox_id, removed=sorted(known))
    cache.set_synced(mailbox_id, None)
    cache.recount([mailbox_id])  # not the STATUS counts a folder not indexed shows
    return {location.email_id for location in known.values()}
