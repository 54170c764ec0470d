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
from tests.integration.server import BridgeServer, JmapClient

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
    # that makes round trips countable by the clock.
    monkeypatch.setattr(session, "QUICKACK", None)
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
