"""Gmail's system folders: the ones its users cannot rename or delete.

Gmail shows its system labels as folders under one container, ``[Gmail]`` (``[Google
Mail]`` in some countries): All Mail, Sent Mail, Drafts, Trash, Spam, Starred, Important
(Google's "IMAP Extensions" document lists them with their SPECIAL-USE attributes). The
container is found as the parent of the \\All folder, and every folder in it is taken for
a system folder, whatever the account's language names it; INBOX is one too.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.store.records import MailboxRecord

# The container's names, for an account whose All Mail is hidden (Gmail lets a user hide
# system labels from IMAP in its settings).
CONTAINER_NAMES = frozenset({"[Gmail]", "[Google Mail]"})


def system_folder_names(records: Iterable[MailboxRecord]) -> frozenset[str]:
    """The names of Gmail's system folders among ``records``, the container's included."""
    listed = list(records)
    containers = set(CONTAINER_NAMES)
    for record in listed:
        if record.role == "all" and record.parent_name is not None:
            containers.add(record.parent_name)
    return frozenset(
        record.name
        for record in listed
        if record.name.upper() == "INBOX"
        or record.name in containers
        or (record.parent_name is not None and _inside(record, containers))
    )


def _inside(record: MailboxRecord, containers: set[str]) -> bool:
    delimiter = record.delimiter or ""
    return any(record.name.startswith(container + delimiter) for container in containers)
