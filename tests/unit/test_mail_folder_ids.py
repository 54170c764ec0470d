"""Folder identity without server ids: renames by look-alike pairs, keys that never clash."""

from __future__ import annotations

from bridge.imap.models import MailboxListing, MailboxStatus
from bridge.mail.folder_ids import minted_key, renamed_pairs
from bridge.store.records import FolderState, MailboxRecord


def listing(name: str, uidvalidity: int, messages: int) -> MailboxListing:
    status = MailboxStatus(messages, 0, messages + 1, uidvalidity)
    return MailboxListing(name, "/", frozenset(), None, True, True, status)


def record(name: str, uidvalidity: int, messages: int, key: str | None = None) -> MailboxRecord:
    state = FolderState(uidvalidity, messages + 1, messages, 0, None)
    return MailboxRecord(
        id=f"m{name}", upstream_key=key or f"name:{uidvalidity}:{name}", name=name, status=state
    )


def test_one_look_alike_each_way_is_a_rename() -> None:
    old = record("Old", 7, 3)
    assert renamed_pairs([listing("New", 7, 3), listing("Fresh", 9, 0)], [old]) == {"New": old}


def test_a_different_count_or_uidvalidity_is_no_rename() -> None:
    assert renamed_pairs([listing("New", 7, 4)], [record("Old", 7, 3)]) == {}
    assert renamed_pairs([listing("New", 8, 3)], [record("Old", 7, 3)]) == {}


def test_ambiguous_pairs_are_destroy_and_create() -> None:
    # Two folders made in the same second (imap4d's UIDVALIDITY), both empty, both gone.
    gone = [record("A", 7, 0), record("B", 7, 0)]
    assert renamed_pairs([listing("C", 7, 0)], gone) == {}
    assert renamed_pairs([listing("C", 7, 0), listing("D", 7, 0)], gone[:1]) == {}


def test_folders_with_server_ids_are_never_paired_by_looks() -> None:
    assert renamed_pairs([listing("New", 7, 3)], [record("Old", 7, 3, key="guid:abc")]) == {}


def test_minted_keys_never_clash_with_one_in_use() -> None:
    new = listing("Old", 7, 0)
    assert minted_key(new, set()) == "name:7:Old"
    # "Old" renamed to "New" kept its key; a new "Old" of the same second gets another.
    assert minted_key(new, {"name:7:Old"}) == "name:7:Old:2"
    assert minted_key(new, {"name:7:Old", "name:7:Old:2"}) == "name:7:Old:3"
