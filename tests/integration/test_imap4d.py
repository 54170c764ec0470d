"""bridge on GNU imap4d: a server with none of the extensions bridge likes (no SPECIAL-USE,
CONDSTORE, UIDPLUS, MOVE, LIST-STATUS or object ids), whose UIDVALIDITY moves under it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.imap4d import Imap4d
from bridge.imap import session
from bridge.mail.email_set import EmailSetter
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.test_email_set import between_sync_and_write

MESSAGE = b"From: a@example.com\r\nSubject: s\r\nMessage-ID: <%d@example.com>\r\n\r\nbody\r\n"


@pytest.fixture(scope="module")
def bridge4(imap4d: Imap4d, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeServer]:
    with BridgeServer(imap4d.host, imap4d.port, tmp_path_factory.mktemp("data")) as server:
        yield server


@pytest.fixture
def jmap4(bridge4: BridgeServer, imap4d_account: tuple[str, str]) -> Iterator[JmapClient]:
    client = bridge4.client(*imap4d_account)
    yield client
    client.close()


def test_login_by_authenticate_where_login_is_disabled(tmp_path: Path) -> None:
    # LOGINDISABLED makes bridge AUTHENTICATE PLAIN, whose completion imap4d ends in a bare LF.
    with (
        Imap4d({"carol": "carol-pw"}, login_disabled=True) as server,
        BridgeServer(server.host, server.port, tmp_path) as bridge,
    ):
        jmap = bridge.client(server.login("carol"), "carol-pw")
        assert "INBOX" in jmap.mailboxes()
        jmap.close()


def test_unchanged_folders_cost_one_round_trip(
    imap4d: Imap4d,
    imap4d_account: tuple[str, str],
    imap4d_other: IMAPClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without quick ACKs every round trip to imap4d waits ~44 ms (session._QuickAckIO):
    # that makes round trips countable by the clock. (Only this test's connections go
    # without: sessions of other bridges still alive keep reading as they were.)
    monkeypatch.setattr(session, "_ack_at_once", lambda imap: None)
    for number in range(60):
        imap4d_other.create_folder(f"Empty{number:02d}")
    imap4d_other.append("Empty00", MESSAGE % 1)
    with BridgeServer(imap4d.host, imap4d.port, tmp_path) as bridge:
        jmap = bridge.client(*imap4d_account)
        assert len(jmap.mailboxes()) == 66
        # One STATUS after another: 66 round trips, 2.9 s. Pipelined they are one, and
        # no empty folder is SELECTed.
        started = time.monotonic()
        boxes = jmap.mailboxes()
        assert time.monotonic() - started < 1.5
        assert boxes["Empty00"]["totalEmails"] == 1
        imap4d_other.append("Empty59", MESSAGE % 2)
        assert jmap.mailboxes()["Empty59"]["totalEmails"] == 1
        jmap.close()


def test_roles_come_from_well_known_names(jmap4: JmapClient, imap4d_other: IMAPClient) -> None:
    imap4d_other.create_folder("Papierkorb")  # "Trash" holds that role already
    imap4d_other.create_folder("Work/Sent")  # a user's own folder, not the sent one
    roles = {name: box["role"] for name, box in jmap4.mailboxes().items()}
    assert roles == {
        "INBOX": "inbox", "Drafts": "drafts", "Sent": "sent", "Trash": "trash",
        "Junk": "junk", "Archive": "archive", "Papierkorb": None, "Work": None,
        "Work/Sent": None,
    }  # fmt: skip


def test_a_created_mailbox_keeps_its_id(jmap4: JmapClient) -> None:
    # imap4d gives a new folder another UIDVALIDITY right after CREATE: no id may hang on it.
    created = jmap4.call("Mailbox/set", {"create": {"k": {"name": "Projects"}}})["created"]["k"]
    for _ in range(10):
        assert jmap4.mailboxes()["Projects"]["id"] == created["id"]


def test_rename_through_bridge_keeps_the_id(jmap4: JmapClient, imap4d_other: IMAPClient) -> None:
    imap4d_other.create_folder("Before")
    imap4d_other.create_folder("Before/Child")
    boxes = jmap4.mailboxes()
    update = {boxes["Before"]["id"]: {"name": "After"}}
    assert jmap4.call("Mailbox/set", {"update": update})["updated"] is not None
    after = jmap4.mailboxes()
    assert after["After"]["id"] == boxes["Before"]["id"]
    assert after["After/Child"]["id"] == boxes["Before/Child"]["id"]
    assert "Before" not in after


def test_rename_by_another_client(jmap4: JmapClient, imap4d_other: IMAPClient) -> None:
    imap4d_other.create_folder("Old")
    for number in range(3):
        imap4d_other.append("Old", MESSAGE % number)
    # While mail sits in a Maildir's new/, imap4d numbers it afresh, with a new
    # UIDVALIDITY, on every look; opened read-write, the folder settles.
    imap4d_other.select_folder("Old")
    imap4d_other.unselect_folder()
    imap4d_other.create_folder("Other")
    boxes = jmap4.mailboxes()
    state = jmap4.call("Mailbox/get", {"ids": []})["state"]
    imap4d_other.rename_folder("Old", "New")
    after = jmap4.mailboxes()
    assert after["New"]["id"] == boxes["Old"]["id"] and after["New"]["totalEmails"] == 3
    changes = jmap4.call("Mailbox/changes", {"sinceState": state})
    assert changes["updated"] == [boxes["Old"]["id"]] and changes["destroyed"] == []
    # Deleted and another made under a new name: not a rename. (imap4d's UIDVALIDITY is
    # the time in seconds: a folder made in the second its look-alike was would pass.)
    time.sleep(1.1)
    imap4d_other.delete_folder("Other")
    imap4d_other.create_folder("Another")
    after = jmap4.mailboxes()
    assert "Other" not in after and after["Another"]["id"] != boxes["Other"]["id"]


def test_folders_with_mail_are_scanned_without_waiting_on_acks(
    jmap4: JmapClient, imap4d_other: IMAPClient
) -> None:
    for number in range(20):
        imap4d_other.create_folder(f"Full{number:02d}")
        imap4d_other.append(f"Full{number:02d}", MESSAGE % number)
        imap4d_other.select_folder(f"Full{number:02d}")  # mail out of new/: see below
        imap4d_other.unselect_folder()
    assert jmap4.mailboxes()["Full19"]["totalEmails"] == 1
    # No CONDSTORE: each folder with mail is opened and its flags read on every request.
    # With delayed ACKs that cost ~90 ms a folder (1.8 s here); acknowledged at once,
    # a few milliseconds.
    started = time.monotonic()
    jmap4.call("Mailbox/get", {"ids": None})
    assert time.monotonic() - started < 1.0


def test_a_role_on_create_comes_from_the_name(jmap4: JmapClient, imap4d_other: IMAPClient) -> None:
    imap4d_other.delete_folder("Junk")
    imap4d_other.delete_folder("Archive")
    jmap4.mailboxes()
    done = jmap4.call(
        "Mailbox/set",
        {"create": {"spam": {"name": "Spam", "role": "junk"},
                    "old": {"name": "Old stuff", "role": "archive"},
                    "bin": {"name": "Bin", "role": "trash"}}},
    )  # fmt: skip
    assert done["created"]["spam"]["role"] == "junk"
    # No SPECIAL-USE to give "Old stuff" the role; and "trash" is Trash's.
    assert done["notCreated"]["old"]["properties"] == ["role"]
    assert done["notCreated"]["bin"]["properties"] == ["role"]
    boxes = jmap4.mailboxes()
    assert boxes["Spam"]["role"] == "junk" and "Old stuff" not in boxes


def _emails_by_message_id(jmap: JmapClient, mailbox_id: str) -> dict[str, str]:
    ids = jmap.call("Email/query", {"filter": {"inMailbox": mailbox_id}})["ids"]
    found = jmap.call("Email/get", {"ids": ids, "properties": ["messageId"]})["list"]
    return {email["messageId"][0]: email["id"] for email in found}


def _flags_by_message_id(client: IMAPClient, folder: str) -> dict[str, tuple[bytes, ...]]:
    client.select_folder(folder)
    fetched = client.fetch(client.search("ALL"), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    client.unselect_folder()
    return {
        data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].split(b"<")[1].split(b">")[0].decode():
        tuple(data[b"FLAGS"]) for data in fetched.values()
    }  # fmt: skip


def test_destroy_leaves_another_clients_deletion_pending(
    jmap4: JmapClient, imap4d_other: IMAPClient
) -> None:
    # No UIDPLUS: bridge lifts the other client's \Deleted mark around its EXPUNGE and
    # puts it back after, so only the destroyed message goes.
    for number in range(1, 4):
        imap4d_other.append("INBOX", MESSAGE % number)
    imap4d_other.select_folder("INBOX")
    imap4d_other.add_flags(imap4d_other.search(["HEADER", "Message-ID", "<2@example.com>"]),
                           [b"\\Deleted"], silent=True)  # fmt: skip
    imap4d_other.unselect_folder()
    inbox = jmap4.mailboxes()["INBOX"]["id"]
    emails = _emails_by_message_id(jmap4, inbox)
    done = jmap4.call("Email/set", {"destroy": [emails["1@example.com"]]})
    assert done["destroyed"] == [emails["1@example.com"]], done["notDestroyed"]
    flags = _flags_by_message_id(imap4d_other, "INBOX")
    assert sorted(flags) == ["2@example.com", "3@example.com"]
    assert b"\\Deleted" in flags["2@example.com"]
    assert b"\\Deleted" not in flags["3@example.com"]
    assert "1@example.com" not in _emails_by_message_id(jmap4, inbox)


def test_move_by_mailbox_ids_copies_and_expunges(
    jmap4: JmapClient, imap4d_other: IMAPClient
) -> None:
    for number in range(1, 3):
        imap4d_other.append("INBOX", MESSAGE % number)
    boxes = jmap4.mailboxes()
    inbox, archive = boxes["INBOX"]["id"], boxes["Archive"]["id"]
    email = _emails_by_message_id(jmap4, inbox)["1@example.com"]
    done = jmap4.call("Email/set", {"update": {email: {"mailboxIds": {archive: True}}}})
    assert email in done["updated"]
    assert sorted(_flags_by_message_id(imap4d_other, "INBOX")) == ["2@example.com"]
    assert sorted(_flags_by_message_id(imap4d_other, "Archive")) == ["1@example.com"]
    assert list(_emails_by_message_id(jmap4, archive)) == ["1@example.com"]
    assert "1@example.com" not in _emails_by_message_id(jmap4, inbox)


def test_create_without_appenduid_is_found_by_its_message_id(
    jmap4: JmapClient, imap4d_other: IMAPClient
) -> None:
    # No UIDPLUS, so no APPENDUID: the new message is found by the Message-ID bridge gave
    # it, and answered as created exactly once (never "not created" while it is upstream).
    drafts = jmap4.mailboxes()["Drafts"]["id"]
    draft = {
        "mailboxIds": {drafts: True},
        "keywords": {"$draft": True},
        "from": [{"email": "me@imap4d.test"}],
        "subject": "Draft without APPENDUID",
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "bodyValues": {"t": {"value": "Hello"}},
    }
    done = jmap4.call("Email/set", {"create": {"d": draft}})
    assert done["created"], done["notCreated"]
    created = done["created"]["d"]
    asked = {"ids": [created["id"]], "properties": ["subject", "mailboxIds", "keywords"]}
    read = jmap4.call("Email/get", asked)
    assert read["list"] == [
        {"id": created["id"], "subject": "Draft without APPENDUID",
         "mailboxIds": {drafts: True}, "keywords": {"$draft": True}}
    ]  # fmt: skip
    imap4d_other.select_folder("Drafts", readonly=True)
    assert len(imap4d_other.search(["SUBJECT", "Draft without APPENDUID"])) == 1
    imap4d_other.unselect_folder()


def test_a_folder_renamed_to_the_trash_moves_unread_threads(
    jmap4: JmapClient, imap4d_other: IMAPClient
) -> None:
    # RFC 8621 §2: unread mail only in the trash does not make another folder's thread
    # unread. Renamed to "Trash" on a server without SPECIAL-USE, a folder becomes the trash.
    imap4d_other.delete_folder("Trash")
    for folder in ("Topic", "Later"):
        imap4d_other.create_folder(folder)
    imap4d_other.append(
        "Topic",
        b"From: a@example.com\r\nSubject: topic\r\nMessage-ID: <t1@example.com>\r\n\r\nx\r\n",
    )
    imap4d_other.append(
        "Later",
        b"From: b@example.com\r\nSubject: Re: topic\r\nMessage-ID: <t2@example.com>\r\n"
        b"In-Reply-To: <t1@example.com>\r\nReferences: <t1@example.com>\r\n\r\ny\r\n",
    )
    for folder in ("Topic", "Later"):  # settled (see test_rename_by_another_client)
        imap4d_other.select_folder(folder)
        if folder == "Topic":
            imap4d_other.add_flags(imap4d_other.search("ALL"), [b"\\Seen"])
        imap4d_other.unselect_folder()
    boxes = jmap4.mailboxes()
    assert (boxes["Topic"]["unreadEmails"], boxes["Topic"]["unreadThreads"]) == (0, 1)
    renamed = jmap4.call("Mailbox/set", {"update": {boxes["Later"]["id"]: {"name": "Trash"}}})
    assert renamed["updated"] is not None, renamed
    after = jmap4.mailboxes()
    assert after["Trash"]["role"] == "trash"
    assert (after["Topic"]["unreadEmails"], after["Topic"]["unreadThreads"]) == (0, 0)


def expunge_the_newest(other: IMAPClient) -> None:
    other.select_folder("INBOX")
    other.delete_messages(other.search(["HEADER", "Message-ID", "<2@example.com>"]))
    other.expunge()
    other.unselect_folder()


@pytest.mark.parametrize("write", ["destroy", "flag", "move"])
def test_a_write_racing_another_clients_expunge_changes_no_other_message(
    jmap4: JmapClient, imap4d_other: IMAPClient, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    """imap4d reads a UID above the folder's highest as its last message: a UID STORE for
    the newest message, expunged by another client between the request's sync and its
    write, would change the message that is newest now (a \\Deleted mark for the next
    EXPUNGE of any client to take, a flag, or a copy into Archive)."""
    for number in range(1, 3):
        imap4d_other.append("INBOX", MESSAGE % number)
    newest = _emails_by_message_id(jmap4, jmap4.mailboxes()["INBOX"]["id"])["2@example.com"]
    method = "_destroy_once" if write == "destroy" else "_update_once"
    between_sync_and_write(monkeypatch, EmailSetter, method,
                           lambda: expunge_the_newest(imap4d_other))  # fmt: skip
    if write == "destroy":
        done = jmap4.call("Email/set", {"destroy": [newest]})
        assert done["notDestroyed"][newest]["type"] == "notFound", done
    else:
        archive = jmap4.mailboxes()["Archive"]["id"]
        patch = {"keywords/$flagged": True} if write == "flag" else {"mailboxIds": {archive: True}}
        done = jmap4.call("Email/set", {"update": {newest: patch}})
        assert done["notUpdated"][newest]["type"] == "notFound", done
    assert _flags_by_message_id(imap4d_other, "INBOX") == {"1@example.com": ()}
    assert _flags_by_message_id(imap4d_other, "Archive") == {}
