"""Gmail's labels as mailboxes (bridge/mail/gmail_labels.py), against the Gmail emulation:
All Mail is synced once and the label folders are never opened, an Email's labels are its
mailboxIds, label changes from either side show in Email/changes, and writes are what
Gmail's IMAP documents (X-GM-LABELS STORE, MOVE to and from the Trash)."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.gmail import ALL_MAIL, SPAM, STARRED, TRASH, GmailFront
from bridge.demo.gmail.front import Served
from bridge.imap.connection import ImapConnection, UpstreamConfig
from bridge.mail.email_set import EmailSetter
from bridge.mail.indexer import BackgroundIndexer
from bridge.mail.sync import Syncer
from tests.integration.conftest import GMAIL_USERS, logged_in
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.test_email_set import between_sync_and_write
from tests.support.stores import open_test_cache

USER = "gail"
# The folders that hold messages of their own on Gmail: the only ones bridge may open.
REAL_FOLDERS = {ALL_MAIL, TRASH, SPAM}
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def gmail_account(gmail_front: GmailFront) -> GmailFront:
    """gail's account, with one message in All Mail alone, so that a message delivered to
    INBOX has a different UID there than in All Mail (a view read from the wrong folder
    would find the wrong message, or none)."""
    with logged_in(gmail_front, USER, GMAIL_USERS[USER]) as client:
        client.append(ALL_MAIL, _message("archived long ago")[0])
    return gmail_front


@pytest.fixture(scope="module")
def bridge_on_gmail(
    gmail_account: GmailFront, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeServer]:
    data = Path(tmp_path_factory.mktemp("gmail-labels"))
    with BridgeServer(gmail_account.host, gmail_account.port, data) as server:
        yield server


@pytest.fixture
def jmap(bridge_on_gmail: BridgeServer) -> Iterator[JmapClient]:
    client = bridge_on_gmail.client(USER, GMAIL_USERS[USER])
    yield client
    client.close()


@pytest.fixture
def gmail(gmail_account: GmailFront) -> Iterator[IMAPClient]:
    with logged_in(gmail_account, USER, GMAIL_USERS[USER]) as client:
        yield client


def _message(subject: str) -> tuple[bytes, str]:
    message_id = f"<gl{next(_numbers)}@example.com>"
    body = (
        f"From: ann@example.com\r\nTo: gail@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n\r\nhello {subject}\r\n"
    )
    return body.encode(), message_id


def deliver(gmail: IMAPClient, subject: str, labels: tuple[str, ...] = ()) -> str:
    """A message delivered to INBOX, with these labels besides; its Message-ID."""
    raw, message_id = _message(subject)
    gmail.append("INBOX", raw)
    if labels:
        gmail.select_folder(ALL_MAIL)
        gmail.add_gmail_labels(uids_in(gmail, ALL_MAIL, message_id), list(labels))
    return message_id


def uids_in(gmail: IMAPClient, folder: str, message_id: str) -> list[int]:
    gmail.select_folder(folder)
    return gmail.search(["HEADER", "Message-ID", message_id])


def labels_of(gmail: IMAPClient, message_id: str) -> set[str]:
    (uid,) = uids_in(gmail, ALL_MAIL, message_id)
    return set(gmail.get_gmail_labels([uid])[uid])


def email_of(jmap: JmapClient, message_id: str) -> dict[str, Any]:
    found = jmap.call("Email/query", {"filter": {"header": ["Message-ID", message_id]}})
    (email,) = jmap.call(
        "Email/get", {"ids": found["ids"], "properties": ["mailboxIds", "threadId", "subject"]}
    )["list"]
    return email


def mailbox_names(jmap: JmapClient, email: dict[str, Any]) -> set[str]:
    names = {box["id"]: name for name, box in jmap.mailboxes().items()}
    return {names[mailbox_id] for mailbox_id in email["mailboxIds"]}


def assert_counts_upstream(gmail: IMAPClient, boxes: dict[str, Any], *names: str) -> None:
    """Each mailbox's totalEmails and unreadEmails are what STATUS says of its folder."""
    for name in names:
        status = gmail.folder_status(name, [b"MESSAGES", b"UNSEEN"])
        counts = (boxes[name]["totalEmails"], boxes[name]["unreadEmails"])
        assert counts == (status[b"MESSAGES"], status[b"UNSEEN"]), name


def served_since(front: GmailFront, start: int) -> list[Served]:
    return [s for s in front.served[start:] if s.user == USER]


def changed_since(jmap: JmapClient, state: str) -> list[str]:
    return jmap.call("Email/changes", {"sinceState": state})["updated"]


def email_state(jmap: JmapClient) -> str:
    return jmap.call("Email/get", {"ids": []})["state"]


def test_a_full_sync_reads_all_mail_once_and_never_opens_a_label(
    gmail_account: GmailFront, gmail: IMAPClient, tmp_path: Path
) -> None:
    deliver(gmail, "sync one", ("Work", "Muy Importante"))
    starred = deliver(gmail, "sync two", ("Work",))
    gmail.select_folder(ALL_MAIL)
    gmail.add_flags(uids_in(gmail, ALL_MAIL, starred), [b"\\Flagged"])  # Gmail stars it
    binned = deliver(gmail, "sync three")
    gmail.select_folder("INBOX")
    gmail.move(uids_in(gmail, "INBOX", binned), TRASH)
    start = len(gmail_account.served)
    with BridgeServer(gmail_account.host, gmail_account.port, tmp_path) as server:
        client = server.client(USER, GMAIL_USERS[USER])
        boxes = client.mailboxes()  # the first request: a full sync
        client.close()
    served = served_since(gmail_account, start)
    opened = {s.folder for s in served if s.verb in ("SELECT", "EXAMINE")}
    fetches = Counter(s.folder for s in served if s.verb == "FETCH")
    assert opened <= REAL_FOLDERS and ALL_MAIL in opened
    assert set(fetches) <= REAL_FOLDERS
    # Every message's metadata, then every message's labels: two FETCHes, however many
    # labels there are.
    assert fetches[ALL_MAIL] == 2
    assert_counts_upstream(
        gmail, boxes, "INBOX", "Work", "Muy Importante", STARRED, ALL_MAIL, TRASH
    )
    assert boxes[STARRED]["totalEmails"] >= 1


def test_three_labels_are_three_mailboxes_and_the_body_is_read_from_all_mail(
    jmap: JmapClient, gmail: IMAPClient
) -> None:
    message_id = deliver(gmail, "three labels here", ("Work", "Muy Importante"))
    email = email_of(jmap, message_id)
    assert mailbox_names(jmap, email) == {"INBOX", "Work", "Muy Importante", ALL_MAIL}
    got = jmap.call(
        "Email/get",
        {"ids": [email["id"]], "properties": ["subject", "bodyValues", "textBody"],
         "fetchTextBodyValues": True},
    )["list"][0]  # fmt: skip
    assert got["subject"] == "three labels here"
    # A text search in a label is All Mail's search, its UIDs read as the label's.
    boxes = jmap.mailboxes()
    for name in ("Work", "INBOX"):
        condition = {"inMailbox": boxes[name]["id"], "subject": "three labels here"}
        assert jmap.call("Email/query", {"filter": condition})["ids"] == [email["id"]]
    first_page = jmap.call("Email/query", {"filter": {"inMailbox": boxes["Work"]["id"]}})
    assert email["id"] in first_page["ids"]
    assert [v["value"] for v in got["bodyValues"].values()] == ["hello three labels here\n"]


def test_labels_put_and_taken_by_another_client_show_in_email_changes(
    jmap: JmapClient, gmail: IMAPClient
) -> None:
    message_id = deliver(gmail, "relabelled elsewhere", ("Work",))
    email = email_of(jmap, message_id)
    (uid,) = uids_in(gmail, ALL_MAIL, message_id)
    for label, names in (
        ("Later", {"INBOX", "Work", "Later", ALL_MAIL}),  # a label new to the account
        ("Work", {"INBOX", "Later", ALL_MAIL}),
    ):
        state = email_state(jmap)
        gmail.select_folder(ALL_MAIL)
        if label == "Later":
            gmail.add_gmail_labels([uid], [label])
        else:
            gmail.remove_gmail_labels([uid], [label])
        assert email["id"] in changed_since(jmap, state)
        assert mailbox_names(jmap, email_of(jmap, message_id)) == names


def test_labels_set_through_jmap_are_stored_as_x_gm_labels(
    jmap: JmapClient, gmail: IMAPClient, gmail_account: GmailFront
) -> None:
    deliver(gmail, "make the label", ("Receipts",))
    message_id = deliver(gmail, "label me from jmap")
    email = email_of(jmap, message_id)
    receipts = jmap.mailboxes()["Receipts"]["id"]
    for present, labels in ((True, {"\\Inbox", "Receipts"}), (None, {"\\Inbox"})):
        state = email_state(jmap)
        start = len(gmail_account.served)
        result = jmap.call(
            "Email/set", {"update": {email["id"]: {f"mailboxIds/{receipts}": present}}}
        )
        assert result["updated"] == {email["id"]: None}
        served = served_since(gmail_account, start)
        assert {s.verb for s in served} & {"COPY", "MOVE", "EXPUNGE", "APPEND"} == set()
        assert [s.folder for s in served if s.verb == "STORE"] == [ALL_MAIL]
        assert labels_of(gmail, message_id) == labels
        assert email["id"] in changed_since(jmap, state)
        boxes = mailbox_names(jmap, email_of(jmap, message_id))
        assert ("Receipts" in boxes) is bool(present)


def test_archive_takes_the_inbox_label_off(jmap: JmapClient, gmail: IMAPClient) -> None:
    message_id = deliver(gmail, "archive me please", ("Keep",))
    email = email_of(jmap, message_id)
    inbox = jmap.mailboxes()["INBOX"]["id"]
    result = jmap.call("Email/set", {"update": {email["id"]: {f"mailboxIds/{inbox}": None}}})
    assert result["updated"] == {email["id"]: None}
    assert uids_in(gmail, "INBOX", message_id) == []
    assert labels_of(gmail, message_id) == {"Keep"}
    assert mailbox_names(jmap, email_of(jmap, message_id)) == {"Keep", ALL_MAIL}


def test_into_the_trash_and_back_out_as_gmail_moves(jmap: JmapClient, gmail: IMAPClient) -> None:
    message_id = deliver(gmail, "trash and restore", ("Project",))
    email = email_of(jmap, message_id)
    boxes = jmap.mailboxes()
    trash, inbox, project = (boxes[name]["id"] for name in (TRASH, "INBOX", "Project"))
    # Put in the Trash beside its other mailboxes: the Trash takes it from them, as on Gmail.
    result = jmap.call("Email/set", {"update": {email["id"]: {f"mailboxIds/{trash}": True}}})
    assert result["updated"] == {email["id"]: {"mailboxIds": {trash: True}}}
    assert uids_in(gmail, ALL_MAIL, message_id) == []
    assert len(uids_in(gmail, TRASH, message_id)) == 1
    assert mailbox_names(jmap, email_of(jmap, message_id)) == {TRASH}
    wanted = {"mailboxIds": {inbox: True, project: True}}
    result = jmap.call("Email/set", {"update": {email["id"]: wanted}})
    all_mail = boxes[ALL_MAIL]["id"]
    made = dict.fromkeys(sorted((inbox, project, all_mail)), True)
    assert result["updated"] == {email["id"]: {"mailboxIds": made}}  # All Mail came too
    assert uids_in(gmail, TRASH, message_id) == []
    assert labels_of(gmail, message_id) == {"\\Inbox", "Project"}
    restored = email_of(jmap, message_id)
    assert restored["id"] == email["id"]  # X-GM-MSGID stays
    assert mailbox_names(jmap, restored) == {"INBOX", "Project", ALL_MAIL}


def test_created_in_two_labels_is_one_message_in_all_mail(
    jmap: JmapClient, gmail: IMAPClient
) -> None:
    deliver(gmail, "make the folder", ("Travel",))
    boxes = jmap.mailboxes()
    created = jmap.call("Email/set", {"create": {"new": {
        "mailboxIds": {boxes["INBOX"]["id"]: True, boxes["Travel"]["id"]: True},
        "subject": "made by jmap", "from": [{"email": "gail@example.com"}],
        "bodyValues": {"b": {"value": "hi"}}, "textBody": [{"partId": "b", "type": "text/plain"}],
    }}})["created"]["new"]  # fmt: skip
    gmail.select_folder(ALL_MAIL)
    (uid,) = gmail.search(["SUBJECT", "made by jmap"])
    assert set(gmail.get_gmail_labels([uid])[uid]) == {"\\Inbox", "Travel"}
    got = jmap.call("Email/get", {"ids": [created["id"]], "properties": ["mailboxIds"]})
    assert mailbox_names(jmap, got["list"][0]) == {"INBOX", "Travel", ALL_MAIL}
    refused = jmap.call("Email/set", {"create": {"binned": {
        "mailboxIds": {boxes[TRASH]["id"]: True, boxes["Travel"]["id"]: True},
        "subject": "trash and a label", "from": [{"email": "gail@example.com"}],
    }}})["notCreated"]["binned"]  # fmt: skip
    assert refused["type"] == "invalidProperties"
    gmail.select_folder(TRASH)
    assert gmail.search(["SUBJECT", "trash and a label"]) == []


def test_destroy_deletes_exactly_the_message(jmap: JmapClient, gmail: IMAPClient) -> None:
    doomed = deliver(gmail, "destroy exactly me", ("Work",))
    neighbour = deliver(gmail, "my neighbour stays")
    email = email_of(jmap, doomed)
    gmail.select_folder(ALL_MAIL)
    before = len(gmail.search("ALL"))
    assert jmap.call("Email/set", {"destroy": [email["id"]]})["destroyed"] == [email["id"]]
    for folder in ("INBOX", "Work", ALL_MAIL, TRASH):
        assert uids_in(gmail, folder, doomed) == [], folder
    assert len(uids_in(gmail, "INBOX", neighbour)) == 1
    gmail.select_folder(ALL_MAIL)
    assert len(gmail.search("ALL")) == before - 1


def test_label_counts_stay_right(jmap: JmapClient, gmail: IMAPClient) -> None:
    message_id = deliver(gmail, "count me", ("Work",))
    gmail.select_folder(ALL_MAIL)
    gmail.add_flags(uids_in(gmail, ALL_MAIL, message_id), [b"\\Seen"])
    email = email_of(jmap, message_id)
    inbox = jmap.mailboxes()["INBOX"]["id"]
    jmap.call("Email/set", {"update": {email["id"]: {f"mailboxIds/{inbox}": None}}})
    assert_counts_upstream(gmail, jmap.mailboxes(), "INBOX", "Work", ALL_MAIL)


def test_all_mail_indexed_in_the_background_then_fills_the_labels(
    gmail_account: GmailFront, gmail: IMAPClient
) -> None:
    message_id = deliver(gmail, "indexed later", ("Work",))
    cache = open_test_cache()
    config = UpstreamConfig(gmail_account.host, gmail_account.port, tls="plain")
    start = len(gmail_account.served)
    with ImapConnection.open(config, USER, GMAIL_USERS[USER]) as conn:
        # A big account: All Mail left to the indexer; the label views wait for it.
        report = Syncer(cache, conn).sync(foreground_limit=0)
        assert ALL_MAIL in report.unindexed and "INBOX" not in report.unindexed
        BackgroundIndexer(cache, threading.RLock()).index_all(conn)
        Syncer(cache, conn).sync()
    served = served_since(gmail_account, start)
    assert {s.folder for s in served if s.verb in ("SELECT", "EXAMINE", "FETCH")} <= REAL_FOLDERS
    records = {record.name: record for record in cache.mailboxes()}
    (uid,) = uids_in(gmail, ALL_MAIL, message_id)
    in_all_mail = cache.locations(records[ALL_MAIL].id)[uid]
    assert cache.locations(records["Work"].id)[uid].email_id == in_all_mail.email_id
    for name in ("INBOX", "Work"):
        status = gmail.folder_status(name, [b"MESSAGES"])
        assert records[name].counts.total_emails == status[b"MESSAGES"], name
    cache.close()


def test_a_cache_from_before_the_views_is_filled_again_from_all_mail(
    gmail_account: GmailFront, gmail: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = deliver(gmail, "synced the old way", ("Work",))
    cache = open_test_cache()
    config = UpstreamConfig(gmail_account.host, gmail_account.port, tls="plain")
    with ImapConnection.open(config, USER, GMAIL_USERS[USER]) as conn:
        with monkeypatch.context() as old:
            # As bridge synced Gmail before: every label folder as a folder of its own.
            old.setattr("bridge.mail.sync.label_views", lambda conn, records: None)
            Syncer(cache, conn).sync()
        records = {record.name: record for record in cache.mailboxes()}
        (own_uid,) = uids_in(gmail, "INBOX", message_id)
        assert own_uid in cache.locations(records["INBOX"].id)
        Syncer(cache, conn).sync()
    records = {record.name: record for record in cache.mailboxes()}
    (uid,) = uids_in(gmail, ALL_MAIL, message_id)
    all_mail = cache.locations(records[ALL_MAIL].id)
    for name in ("INBOX", "Work"):
        # The same UIDs as All Mail, each the same Email there.
        view = cache.locations(records[name].id)
        assert {u: loc.email_id for u, loc in view.items()} == {
            u: all_mail[u].email_id for u in view
        }
        assert view[uid].email_id == all_mail[uid].email_id
        status = gmail.folder_status(name, [b"MESSAGES"])
        assert records[name].counts.total_emails == status[b"MESSAGES"], name
    cache.close()


def trashed_by_another_client(gmail: IMAPClient, message_id: str) -> None:
    """Another client's move of the message from All Mail to the Trash."""
    gmail.select_folder(ALL_MAIL)
    gmail.move(gmail.search(["HEADER", "Message-ID", message_id]), TRASH)
    gmail.unselect_folder()


def test_a_label_for_a_message_trashed_meanwhile_is_not_answered_as_put(
    jmap: JmapClient, gmail: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client moves the message to the Trash (out of All Mail) right after the
    request's sync: the X-GM-LABELS STORE on its old All Mail UID reaches nothing. The
    update applies to the Email where it is now, and the Trash wins there, as on Gmail."""
    deliver(gmail, "make the label", ("Receipts",))
    message_id = deliver(gmail, "trashed while labelled")
    email = email_of(jmap, message_id)
    boxes = jmap.mailboxes()
    receipts, trash = boxes["Receipts"]["id"], boxes[TRASH]["id"]

    between_sync_and_write(
        monkeypatch,
        EmailSetter,
        "_update_once",
        lambda: trashed_by_another_client(gmail, message_id),
    )
    result = jmap.call("Email/set", {"update": {email["id"]: {f"mailboxIds/{receipts}": True}}})
    assert result["updated"] == {email["id"]: {"mailboxIds": {trash: True}}}, result
    assert mailbox_names(jmap, email_of(jmap, message_id)) == {TRASH}
    assert len(uids_in(gmail, TRASH, message_id)) == 1


def test_a_destroy_of_a_message_trashed_meanwhile_deletes_it_from_the_trash(
    jmap: JmapClient, gmail: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = deliver(gmail, "trashed before its destroy", ("Work",))
    email = email_of(jmap, message_id)

    between_sync_and_write(
        monkeypatch,
        EmailSetter,
        "_destroy_once",
        lambda: trashed_by_another_client(gmail, message_id),
    )
    result = jmap.call("Email/set", {"destroy": [email["id"]]})
    assert result["destroyed"] == [email["id"]], result
    for folder in ("INBOX", "Work", ALL_MAIL, TRASH):
        assert uids_in(gmail, folder, message_id) == [], folder
