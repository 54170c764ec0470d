"""Which cached mailbox a listed folder is, on servers that give folders no id of their own.

With MAILBOXID (RFC 8474) or Dovecot's X-GUID a folder is its server id, whatever its name
(``sync.upstream_key``). Without one, bridge keeps the rules below; UIDVALIDITY is no
identity there (GNU imap4d changes a new folder's right after CREATE, and INBOX's on STATUS).

- A folder keeps its mailbox id while its name stays. A changed UIDVALIDITY under the same
  name resyncs the folder's messages (every old UID gone, every present one new; Emails
  keep their ids where their headers do); the mailbox id does not change.
- A RENAME through bridge keeps the id: bridge renames its cache record (and those of the
  folder's children) as soon as the server confirms, before it lists again.
- A RENAME by another client is told from "one folder destroyed, another created" only by
  what STATUS shows: a folder that vanished in the same sync in which another appeared,
  with the same UIDVALIDITY and the same message count, is the same folder renamed, if
  the pairing is unambiguous (one candidate each way). Anything else is a destroy and a
  create: a new id, the messages found again in the new folder.
- A new folder's id derives from ``name:<UIDVALIDITY>:<name>`` as first seen, so a lost
  cache rebuilt from the same server gives the same ids while names and UIDVALIDITYs hold.
  The key is only an identity: it keeps its old name after a rename.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bridge.imap.models import MailboxListing
from bridge.store.records import MailboxRecord

SERVER_ID_PREFIX = "guid:"


def has_server_id(record: MailboxRecord) -> bool:
    return record.upstream_key.startswith(SERVER_ID_PREFIX)


def _looks_alike(listing: MailboxListing, record: MailboxRecord) -> bool:
    status, before = listing.status, record.status
    return (
        status is not None
        and before is not None
        and status.uidvalidity == before.uidvalidity
        and status.messages == before.messages
    )


def renamed_pairs(
    appeared: Sequence[MailboxListing], gone: Sequence[MailboxRecord]
) -> dict[str, MailboxRecord]:
    """Name of a folder that appeared -> the vanished record it is, renamed: where each
    has exactly one look-alike on the other side."""
    appeared = [listing for listing in appeared if listing.selectable]
    gone = [record for record in gone if not has_server_id(record)]
    pairs: dict[str, MailboxRecord] = {}
    for listing in appeared:
        candidates = [record for record in gone if _looks_alike(listing, record)]
        if len(candidates) != 1:
            continue
        [record] = candidates
        if sum(_looks_alike(other, record) for other in appeared) == 1:
            pairs[listing.name] = record
    return pairs


def minted_key(listing: MailboxListing, taken: Collection[str]) -> str:
    """A key for a folder first seen, not among ``taken`` (the keys in use)."""
    uidvalidity = listing.status.uidvalidity if listing.status else 0
    key = base = f"name:{uidvalidity}:{listing.name}"
    number = 1
    while key in taken:
        # A folder renamed away kept this key: its old name, same UIDVALIDITY.
        number += 1
        key = f"{base}:{number}"
    return key
