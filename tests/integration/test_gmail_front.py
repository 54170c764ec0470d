"""The Gmail emulation (bridge/demo/gmail.py) seen by a raw IMAP client, as Google's IMAP
extensions document describes Gmail: labels are folders, All Mail holds each message once,
X-GM-MSGID and X-GM-THRID are the same in every folder."""

from __future__ import annotations

import imaplib
import itertools
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from bridge.demo.gmail import ALL_MAIL, SPAM, STARRED, TRASH, GmailFront
from tests.integration.conftest import GMAIL_USERS, logged_in

_numbers = itertools.count(1)


@pytest.fixture
def gmail(gmail_front: GmailFront) -> Iterator[IMAPClient]:
    with logged_in(gmail_front, "gina", GMAIL_USERS["gina"]) as client:
        yield client


def message(subject: str, reply_to: str | None = None) -> tuple[bytes, str]:
    """A message with a fresh Message-ID (and In-Reply-To/References when a reply)."""
    message_id = f"<m{next(_numbers)}@example.com>"
    thread = f"In-Reply-To: {reply_to}\r\nReferences: {reply_to}\r\n" if reply_to else ""
    body = (
        f"From: Ann <ann@example.com>\r\nTo: gina@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n{thread}\r\nhello {subject}\r\n"
    )
    return body.encode(), message_id


def deliver(gmail: IMAPClient, subject: str, reply_to: str | None = None) -> tuple[int, str]:
    """APPEND to INBOX as delivery does; (UID in INBOX, Message-ID)."""
    raw, message_id = message(subject, reply_to)
    gmail.append("INBOX", raw)
    gmail.select_folder("INBOX")
    return max(gmail.search(["HEADER", "Message-ID", message_id])), message_id


def uids_of(gmail: IMAPClient, folder: str, message_id: str) -> list[int]:
    gmail.select_folder(folder)
    return gmail.search(["HEADER", "Message-ID", message_id])


def ids(gmail: IMAPClient, folder: str, message_id: str) -> tuple[int, int]:
    (uid,) = uids_of(gmail, folder, message_id)
    data = gmail.fetch([uid], ["X-GM-MSGID", "X-GM-THRID"])[uid]
    return data[b"X-GM-MSGID"], data[b"X-GM-THRID"]


def test_capabilities_greeting_and_special_folders(gmail: IMAPClient) -> None:
    assert b"X-GM-EXT-1" in gmail.capabilities()
    assert b"IDLE" not in gmail.capabilities()  # not emulated, so not advertised
    assert b"Gimap ready" in gmail.welcome
    assert gmail.id_({"name": "test"})[0][:2] == (b"name", b"GImap")
    uses = {name: flags for flags, _, name in gmail.list_folders()}
    assert b"\\All" in uses[ALL_MAIL] and b"\\Junk" in uses["[Gmail]/Spam"]
    assert b"\\Important" in uses["[Gmail]/Important"] and b"\\Flagged" in uses[STARRED]
    assert b"\\Noselect" in uses["[Gmail]"]  # the parent Gmail lists


def test_three_labels_one_message_same_ids_everywhere(gmail: IMAPClient) -> None:
    uid, message_id = deliver(gmail, "three labels")
    gmail.add_gmail_labels([uid], ["Work", "Muy Importante"])
    assert set(gmail.get_gmail_labels([uid])[uid]) == {"\\Inbox", "Work", "Muy Importante"}
    assert len(uids_of(gmail, ALL_MAIL, message_id)) == 1
    seen = {folder: ids(gmail, folder, message_id) for folder in ("INBOX", "Work", ALL_MAIL)}
    seen["Muy Importante"] = ids(gmail, "Muy Importante", message_id)
    assert len(set(seen.values())) == 1
    msgid, thrid = seen["INBOX"]
    assert msgid == thrid  # the first message of its thread names the thread
    gmail.select_folder(ALL_MAIL)
    assert gmail.search(["X-GM-MSGID", msgid]) == uids_of(gmail, ALL_MAIL, message_id)


def test_a_reply_shares_the_thread_id_and_not_the_message_id(gmail: IMAPClient) -> None:
    _, first = deliver(gmail, "thread start")
    _, second = deliver(gmail, "Re: thread start", reply_to=first)
    first_ids, second_ids = ids(gmail, "INBOX", first), ids(gmail, "INBOX", second)
    assert first_ids[1] == second_ids[1] == first_ids[0] != second_ids[0]
    gmail.select_folder("INBOX")
    found = gmail.search(["X-GM-THRID", first_ids[1]])
    assert set(found) == set(uids_of(gmail, "INBOX", first) + uids_of(gmail, "INBOX", second))


def test_labels_added_and_removed_by_store_show_in_folders(gmail: IMAPClient) -> None:
    uid, message_id = deliver(gmail, "relabel")
    gmail.add_gmail_labels([uid], ["Receipts"])
    assert len(uids_of(gmail, "Receipts", message_id)) == 1
    gmail.select_folder("INBOX")
    gmail.add_gmail_labels([uid], ["Receipts"])  # twice: still one copy
    assert len(uids_of(gmail, "Receipts", message_id)) == 1
    gmail.select_folder("INBOX")
    gmail.remove_gmail_labels([uid], ["Receipts"])
    assert gmail.get_gmail_labels([uid])[uid] == ["\\Inbox"]
    assert uids_of(gmail, "Receipts", message_id) == []
    assert len(uids_of(gmail, ALL_MAIL, message_id)) == 1


def test_archive_removes_inbox_and_keeps_all_mail(gmail: IMAPClient) -> None:
    uid, message_id = deliver(gmail, "archive me")
    gmail.add_gmail_labels([uid], ["Keep"])
    gmail.remove_gmail_labels([uid], ["\\Inbox"])
    assert uids_of(gmail, "INBOX", message_id) == []
    (kept,) = uids_of(gmail, ALL_MAIL, message_id)
    assert gmail.get_gmail_labels([kept])[kept] == ["Keep"]


def test_expunge_from_a_label_folder_only_removes_the_label(gmail: IMAPClient) -> None:
    _, message_id = deliver(gmail, "unlabel by expunge")
    (uid,) = uids_of(gmail, "INBOX", message_id)
    gmail.add_gmail_labels([uid], ["Later"])
    (in_later,) = uids_of(gmail, "Later", message_id)
    gmail.delete_messages([in_later])
    gmail.expunge()
    (kept,) = uids_of(gmail, ALL_MAIL, message_id)
    assert gmail.get_gmail_labels([kept])[kept] == ["\\Inbox"]


@pytest.mark.parametrize(("bin_folder", "label"), [(TRASH, "\\Trash"), (SPAM, "\\Spam")])
def test_trash_and_spam_remove_every_label_and_expunge_there_deletes(
    gmail: IMAPClient, bin_folder: str, label: str
) -> None:
    uid, message_id = deliver(gmail, "bin me")
    gmail.add_gmail_labels([uid], ["Doomed"])
    gmail.select_folder("INBOX")
    gmail.move([uid], bin_folder)
    for folder in ("INBOX", "Doomed", ALL_MAIL):
        assert uids_of(gmail, folder, message_id) == []
    (binned,) = uids_of(gmail, bin_folder, message_id)
    assert gmail.get_gmail_labels([binned])[binned] == [label]
    gmail.delete_messages([binned])
    gmail.expunge()
    for folder in (bin_folder, TRASH, ALL_MAIL):
        assert uids_of(gmail, folder, message_id) == []


def test_copy_back_from_trash_restores_all_mail(gmail: IMAPClient) -> None:
    uid, message_id = deliver(gmail, "untrash me")
    gmail.move([uid], TRASH)
    (trashed,) = uids_of(gmail, TRASH, message_id)
    gmail.move([trashed], "INBOX")
    assert uids_of(gmail, TRASH, message_id) == []
    assert len(uids_of(gmail, ALL_MAIL, message_id)) == 1
    assert len(uids_of(gmail, "INBOX", message_id)) == 1


def test_expunge_from_all_mail_moves_to_trash(gmail: IMAPClient) -> None:
    _, message_id = deliver(gmail, "delete from all mail")
    (uid,) = uids_of(gmail, ALL_MAIL, message_id)
    gmail.delete_messages([uid])
    gmail.expunge()
    assert uids_of(gmail, "INBOX", message_id) == []
    (trashed,) = uids_of(gmail, TRASH, message_id)
    assert b"\\Deleted" not in gmail.get_flags([trashed])[trashed]


def test_flags_are_the_messages_and_starred_follows_flagged(gmail: IMAPClient) -> None:
    uid, message_id = deliver(gmail, "star me")
    gmail.add_flags([uid], [b"\\Seen", b"\\Flagged"])
    (in_all,) = uids_of(gmail, ALL_MAIL, message_id)
    assert {b"\\Seen", b"\\Flagged"} <= set(gmail.get_flags([in_all])[in_all])
    assert set(gmail.get_gmail_labels([in_all])[in_all]) == {"\\Inbox", "\\Starred"}
    gmail.remove_gmail_labels([in_all], ["\\Starred"])
    assert uids_of(gmail, STARRED, message_id) == []
    (in_inbox,) = uids_of(gmail, "INBOX", message_id)
    assert b"\\Flagged" not in gmail.get_flags([in_inbox])[in_inbox]


def test_x_gm_raw_and_label_search(gmail: IMAPClient) -> None:
    uid, _ = deliver(gmail, "quarterly invoice zebra")
    other, _ = deliver(gmail, "lunch zebra")
    gmail.add_gmail_labels([uid], ["Billing"])
    gmail.add_flags([other], [b"\\Seen"])
    gmail.select_folder("INBOX")
    assert gmail.gmail_search("subject:invoice zebra") == [uid]
    assert set(gmail.gmail_search("zebra")) == {uid, other}
    assert gmail.gmail_search("label:Billing from:ann@example.com") == [uid]
    assert uid in gmail.gmail_search("is:unread zebra") and other not in gmail.gmail_search(
        "is:unread zebra"
    )
    assert gmail.search(["X-GM-LABELS", "Billing"]) == [uid]
    with pytest.raises(IMAPClient.Error, match="not emulated"):
        gmail.gmail_search("has:attachment")
    with pytest.raises(imaplib.IMAP4.error, match="not emulated"):
        gmail._imap.xatom("IDLE")  # not advertised either: imapclient would not send it
    with pytest.raises(imaplib.IMAP4.error, match="not emulated"):
        gmail.set_flags([uid], [b"\\Seen"])  # STORE FLAGS without a sign
