"""Expunging exactly some messages without UIDPLUS, against Dovecot with UIDPLUS hidden from
bridge's side (the server still takes a bare EXPUNGE), so that another client can act in the
window between bridge's UID SEARCH DELETED and its EXPUNGE."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import ImapConnection
from bridge.imap.errors import CommandFailed
from tests.integration.test_imap_connection import add_messages, open_alice, unique


@pytest.fixture
def conn(dovecot: Dovecot) -> Iterator[ImapConnection]:
    connection = open_alice(dovecot)
    connection.capabilities = connection.capabilities - {"UIDPLUS"}
    yield connection
    connection.close()


@pytest.fixture
def folder(imap: IMAPClient) -> str:
    """Five messages (UIDs 1-5); UID 2 marked \\Deleted by the other client, not expunged."""
    name = unique("exact")
    imap.create_folder(name)
    add_messages(imap, name, 5)
    imap.select_folder(name)
    imap.add_flags([2], [b"\\Deleted"], silent=True)
    return name


def in_the_window(
    conn: ImapConnection, monkeypatch: pytest.MonkeyPatch, act: Callable[[], object]
) -> None:
    """Run ``act`` after the others' marks are lifted, just before the EXPUNGE."""
    numbered = conn._numbered_uids

    def acting_first() -> list[int]:
        act()
        return numbered()

    monkeypatch.setattr(conn, "_numbered_uids", acting_first)


def deleted_flags(imap: IMAPClient, folder: str) -> dict[int, bool]:
    imap.select_folder(folder)
    return {
        uid: b"\\Deleted" in data[b"FLAGS"]
        for uid, data in imap.fetch(imap.search("ALL"), ["FLAGS"]).items()
    }


def test_only_ours_go_and_others_marks_come_back(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    conn.select(folder, readonly=False)
    conn.expunge_uids("3:4")
    assert deleted_flags(imap, folder) == {1: False, 2: True, 5: False}


def test_a_message_marked_in_the_window_goes_too_and_is_logged(
    conn: ImapConnection,
    imap: IMAPClient,
    folder: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn.select(folder, readonly=False)
    in_the_window(conn, monkeypatch, lambda: imap.add_flags([4], [b"\\Deleted"], silent=True))
    with caplog.at_level(logging.WARNING, logger="bridge.imap"):
        conn.expunge_uids("3")
    assert deleted_flags(imap, folder) == {1: False, 2: True, 5: False}
    assert "also removed UIDs 4 and 0 unknown" in caplog.text


def test_ours_unmarked_in_the_window_is_a_failure(
    conn: ImapConnection, imap: IMAPClient, folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn.select(folder, readonly=False)
    in_the_window(conn, monkeypatch, lambda: imap.remove_flags([3], [b"\\Deleted"], silent=True))
    with pytest.raises(CommandFailed):
        conn.expunge_uids("3")
    assert deleted_flags(imap, folder) == {1: False, 2: True, 3: False, 4: False, 5: False}


def test_messages_gone_already_are_no_error(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    conn.select(folder, readonly=False)
    imap.add_flags([5], [b"\\Deleted"], silent=True)
    imap.uid_expunge([5])  # the other client has UIDPLUS
    conn.expunge_uids("5")
    assert deleted_flags(imap, folder) == {1: False, 2: True, 3: False, 4: False}
