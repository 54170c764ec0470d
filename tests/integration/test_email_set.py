"""Email/set updates and destroys, each read back over a separate IMAP connection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.cyrus import Cyrus
from bridge.demo.dovecot import Dovecot
from bridge.mail.email_set import EmailSetter
from bridge.mail.freshness import Freshness
from tests.integration.server import BridgeServer, JmapClient
from tests.integration.test_email import message, query
from tests.integration.upstreams import Upstream, every_upstream

pytestmark = every_upstream


def flags_in(other: IMAPClient, folder: str) -> dict[bytes, set[bytes]]:
    """Subject -> flags of every message in a folder."""
    other.select_folder(folder, readonly=True)
    fetched = other.fetch(other.search("ALL"), ["ENVELOPE", "FLAGS"])
    return {
        data[b"ENVELOPE"].subject: set(data[b"FLAGS"]) - {b"\\Recent"} for data in fetched.values()
    }


def ids_by_subject(jmap: JmapClient) -> dict[str, str]:
    emails = jmap.call("Email/get", {"ids": query(jmap), "properties": ["subject"]})["list"]
    return {e["subject"]: e["id"] for e in emails}


def test_keywords_whole_and_by_patch(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", message(1, "One"))
    other.append("INBOX", message(2, "Two"), flags=[b"\\Flagged"])
    ids = ids_by_subject(jmap)
    state = jmap.call("Email/get", {"ids": []})["state"]
    result = jmap.call("Email/set", {"ifInState": state, "update": {
        ids["One"]: {"keywords/$seen": True, "keywords/$label1": True},
        ids["Two"]: {"keywords": {"$seen": True}},
    }})  # fmt: skip
    assert result["updated"] == {ids["One"]: None, ids["Two"]: None}, result
    assert result["oldState"] == state and result["newState"] != state
    flags = flags_in(other, "INBOX")
    assert flags[b"One"] >= {b"\\Seen", b"$label1"}
    assert flags[b"Two"] == {b"\\Seen"}  # \Flagged gone: the whole set was replaced
    patched = jmap.call("Email/set", {"update": {ids["One"]: {"keywords/$label1": None}}})
    assert patched["updated"] == {ids["One"]: None}
    assert b"$label1" not in flags_in(other, "INBOX")[b"One"]
    got = jmap.call("Email/get", {"ids": [ids["One"]], "properties": ["keywords"]})
    assert got["list"][0]["keywords"] == {"$seen": True}
    changes = jmap.call("Email/changes", {"sinceState": state})
    assert sorted(changes["updated"]) == sorted(ids.values())


def test_move_copy_and_remove_from_one_mailbox(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", message(1, "Mover"))
    boxes = jmap.mailboxes()
    inbox, archive, trash = boxes["INBOX"]["id"], boxes["Archive"]["id"], boxes["Trash"]["id"]
    [email_id] = query(jmap)
    moved = jmap.call("Email/set", {"update": {email_id: {"mailboxIds": {archive: True}}}})
    assert moved["updated"] == {email_id: None}, moved
    assert flags_in(other, "INBOX") == {} and b"Mover" in flags_in(other, "Archive")
    got = jmap.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds"]})
    assert got["list"][0]["mailboxIds"] == {archive: True}  # the same id after the MOVE
    copied = jmap.call("Email/set", {"update": {email_id: {f"mailboxIds/{trash}": True}}})
    assert copied["updated"] == {email_id: None}
    assert b"Mover" in flags_in(other, "Trash") and b"Mover" in flags_in(other, "Archive")
    removed = jmap.call("Email/set", {"update": {email_id: {f"mailboxIds/{archive}": None}}})
    assert removed["updated"] == {email_id: None}
    assert flags_in(other, "Archive") == {} and b"Mover" in flags_in(other, "Trash")
    got = jmap.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds"]})
    assert got["list"][0]["mailboxIds"] == {trash: True}
    assert inbox not in got["list"][0]["mailboxIds"]


def between_sync_and_write(
    monkeypatch: pytest.MonkeyPatch, cls: type, method: str, change: Callable[[], None]
) -> None:
    """Make ``change`` (another client's) once, right after the request's sync and before
    its write: the race no sync can close."""
    original = getattr(cls, method)
    done: list[bool] = []

    def racing(self: Any, *args: Any) -> Any:
        if not done:
            done.append(True)
            change()
        return original(self, *args)

    monkeypatch.setattr(cls, method, racing)


def expunge_all(other: IMAPClient, folder: str) -> None:
    other.select_folder(folder)
    other.delete_messages(other.search("ALL"))
    other.expunge()
    other.unselect_folder()


def move_all(other: IMAPClient, source: str, destination: str) -> None:
    other.select_folder(source)
    other.move(other.search("ALL"), destination)
    other.unselect_folder()


def test_a_copy_gone_upstream_is_not_trusted_when_another_is_expunged(
    jmap: JmapClient, other: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache places an Email in INBOX and Archive, and another client expunges the
    INBOX copy just after the request's sync. Taking the Email out of Archive must move it
    back to INBOX, not expunge its last copy."""
    other.append("INBOX", message(1, "Kept"))
    boxes = jmap.mailboxes()
    inbox, archive = boxes["INBOX"]["id"], boxes["Archive"]["id"]
    [email_id] = query(jmap)
    jmap.call("Email/set", {"update": {email_id: {f"mailboxIds/{archive}": True}}})
    between_sync_and_write(monkeypatch, EmailSetter, "_update", lambda: expunge_all(other, "INBOX"))
    result = jmap.call("Email/set", {"update": {email_id: {f"mailboxIds/{archive}": None}}})
    assert result["updated"] == {email_id: None}, result
    assert set(flags_in(other, "INBOX")) == {b"Kept"} and flags_in(other, "Archive") == {}
    got = jmap.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds"]})
    assert got["list"][0]["mailboxIds"] == {inbox: True}


@pytest.mark.parametrize("when", ["before, watcher vouching", "between sync and write"])
def test_a_flag_for_a_message_another_client_moved_lands_where_it_went(
    jmap: JmapClient, other: IMAPClient, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Before: a watcher vouches for the cache while its news of the move is still on its
    way (bridge.mail.freshness); a read may answer from the cache, a write may not.
    Between: a UID STORE of the UID the cache knows is OK in IMAP and changes nothing, so
    the Email is not `updated` until its flag is on the message where it is now."""
    other.append("INBOX", message(1, "Moved"))
    archive = jmap.mailboxes()["Archive"]["id"]
    [email_id] = query(jmap)
    if when.startswith("before"):
        move_all(other, "INBOX", "Archive")
        monkeypatch.setattr(Freshness, "level", lambda self: True)
    else:
        between_sync_and_write(
            monkeypatch, EmailSetter, "_update_once", lambda: move_all(other, "INBOX", "Archive")
        )
    result = jmap.call("Email/set", {"update": {email_id: {"keywords/$flagged": True}}})
    assert result["updated"] == {email_id: None}, result
    assert flags_in(other, "Archive") == {b"Moved": {b"\\Flagged"}}
    got = jmap.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds", "keywords"]})
    assert got["list"][0] == {"id": email_id, "mailboxIds": {archive: True},
                              "keywords": {"$flagged": True}}  # fmt: skip


def test_destroy_takes_exactly_its_messages(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", message(1, "Doomed"))
    other.append("INBOX", message(2, "Theirs"))
    ids = ids_by_subject(jmap)
    # Another client marked its own message \Deleted and has not expunged yet.
    other.select_folder("INBOX")
    theirs = [uid for uid, data in other.fetch(other.search("ALL"), ["ENVELOPE"]).items()
              if data[b"ENVELOPE"].subject == b"Theirs"]  # fmt: skip
    other.add_flags(theirs, [b"\\Deleted"])
    other.unselect_folder()
    result = jmap.call("Email/set", {"destroy": [ids["Doomed"], "nope"]})
    assert result["destroyed"] == [ids["Doomed"]]
    assert result["notDestroyed"]["nope"]["type"] == "notFound"
    left = flags_in(other, "INBOX")
    assert set(left) == {b"Theirs"} and b"\\Deleted" in left[b"Theirs"]
    assert jmap.call("Email/get", {"ids": [ids["Doomed"]]})["notFound"] == [ids["Doomed"]]


def test_set_errors_change_nothing(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", message(1, "Keep"))
    [email_id] = query(jmap)
    result = jmap.call("Email/set", {
        "create": {"c": {"subject": "new"}},
        "update": {
            email_id: {"subject": "changed"},
            "nope": {"keywords/$seen": True},
        },
    })  # fmt: skip
    assert result["notUpdated"][email_id]["properties"] == ["subject"]
    assert result["notUpdated"]["nope"]["type"] == "notFound"
    assert result["notCreated"]["c"]["properties"] == ["mailboxIds"]
    for patch in ({"mailboxIds": {}}, {"mailboxIds": {"nope": True}},
                  {"keywords": {"bad keyword": True}}, {"keywords": {"$seen": "no"}}):  # fmt: skip
        refused = jmap.call("Email/set", {"update": {email_id: patch}})
        assert refused["notUpdated"][email_id]["type"] == "invalidProperties", patch
    assert flags_in(other, "INBOX") == {b"Keep": set()}
    stale = jmap.call("Email/set", {"ifInState": "stale-1", "destroy": [email_id]})
    assert stale["error"]["type"] == "stateMismatch"
    assert b"Keep" in flags_in(other, "INBOX")


def test_without_move_a_move_is_copy_and_expunge(tmp_path: Path) -> None:
    with (
        Dovecot({"u": "p"}, hide_capabilities=["MOVE"]) as dovecot,
        BridgeServer(dovecot.host, dovecot.port, tmp_path) as server,
    ):
        other = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
        other.login("u", "p")
        other.append("INBOX", message(1, "Mover"))
        other.append("INBOX", message(2, "Stays"))
        jmap = server.client("u", "p")
        archive = jmap.mailboxes()["Archive"]["id"]
        ids = ids_by_subject(jmap)
        moved = jmap.call("Email/set", {"update": {ids["Mover"]: {"mailboxIds": {archive: True}}}})
        assert moved["updated"] == {ids["Mover"]: None}, moved
        assert set(flags_in(other, "INBOX")) == {b"Stays"}
        assert set(flags_in(other, "Archive")) == {b"Mover"}
        jmap.close()


def test_a_message_larger_than_the_upstream_takes_is_too_large(tmp_path: Path) -> None:
    with (
        Dovecot({"u": "p"}, max_mail_size="100k") as dovecot,
        BridgeServer(dovecot.host, dovecot.port, tmp_path) as server,
    ):
        jmap = server.client("u", "p")
        drafts = jmap.mailboxes()["Drafts"]["id"]

        def draft(size: int) -> dict[str, Any]:
            return {"mailboxIds": {drafts: True}, "subject": f"{size} bytes",
                    "bodyValues": {"t": {"value": "x" * size}},
                    "textBody": [{"partId": "t", "type": "text/plain"}]}  # fmt: skip

        result = jmap.call("Email/set", {"create": {"big": draft(300_000), "small": draft(10)}})
        assert result["notCreated"]["big"]["type"] == "tooLarge", result
        assert set(result["created"]) == {"small"}
        other = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
        other.login("u", "p")
        assert set(flags_in(other, "Drafts")) == {b"10 bytes"}  # nothing of the big one
        other.logout()
        jmap.close()


def test_create_a_draft(jmap: JmapClient, other: IMAPClient) -> None:
    boxes = jmap.mailboxes()
    drafts, archive = boxes["Drafts"]["id"], boxes["Archive"]["id"]
    result = jmap.call("Email/set", {"create": {"d": {
        "mailboxIds": {drafts: True, archive: True},
        "keywords": {"$draft": True, "$seen": True},
        "from": [{"name": "Zoë Ångström", "email": "zoe@example.com"}],
        "to": [{"email": "bob@example.com"}],
        "subject": "Réunion demain",
        "receivedAt": "2026-06-01T10:00:00Z",
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "htmlBody": [{"partId": "h", "type": "text/html"}],
        "bodyValues": {"t": {"value": "À demain"}, "h": {"value": "<p>À demain</p>"}},
        "header:X-Client:asText": "tests",
    }}})  # fmt: skip
    created = result["created"]["d"]
    assert set(created) == {"id", "blobId", "threadId", "size"}, result
    other.select_folder("Drafts", readonly=True)
    [data] = other.fetch(other.search("ALL"), ["FLAGS", "BODY[]", "INTERNALDATE"]).values()
    assert {b"\\Draft", b"\\Seen"} <= set(data[b"FLAGS"])
    raw = data[b"BODY[]"]
    assert b"X-Client: tests" in raw and b"Message-ID: <" in raw and b"\r\nDate: " in raw
    assert data[b"INTERNALDATE"].replace(tzinfo=None).day == 1
    # The copy in Archive is the same Email.
    properties = ["mailboxIds", "subject", "from", "textBody", "bodyValues", "keywords"]
    got = jmap.call("Email/get", {"ids": [created["id"]], "fetchTextBodyValues": True,
                                  "properties": properties})  # fmt: skip
    email = got["list"][0]
    assert email["mailboxIds"] == {drafts: True, archive: True}
    assert email["subject"] == "Réunion demain" and email["from"][0]["name"] == "Zoë Ångström"
    assert email["bodyValues"][email["textBody"][0]["partId"]]["value"].startswith("À demain")
    assert email["keywords"] == {"$draft": True, "$seen": True}
    # The downloaded blob is exactly what the server stored.
    url = jmap.session["downloadUrl"].format(accountId=jmap.account_id, blobId=created["blobId"],
                                             name="d.eml", type="message/rfc822")  # fmt: skip
    assert jmap.http.get(url).content == raw


def test_create_errors(jmap: JmapClient, other: IMAPClient) -> None:
    drafts = jmap.mailboxes()["Drafts"]["id"]
    result = jmap.call("Email/set", {"create": {
        "nobox": {"subject": "x"},
        "missing": {"mailboxIds": {drafts: True}, "attachments": [{"blobId": "Unope"}]},
        "headers": {"mailboxIds": {drafts: True}, "headers": [{"name": "X", "value": "y"}]},
        "crlf": {"mailboxIds": {drafts: True}, "subject": "a\r\nBcc: evil@example.com"},
        "id": {"mailboxIds": {drafts: True}, "id": "e1"},
    }})  # fmt: skip
    errors = result["notCreated"]
    assert errors["nobox"]["properties"] == ["mailboxIds"]
    assert errors["missing"]["type"] == "blobNotFound" and errors["missing"]["notFound"] == [
        "Unope"
    ]
    assert errors["headers"]["properties"] == ["headers"]
    assert errors["id"]["properties"] == ["id"]
    assert errors["crlf"]["properties"] == ["subject"]  # no header smuggled in
    other.select_folder("Drafts", readonly=True)
    assert other.search("ALL") == []


def test_import_and_copy(jmap: JmapClient, other: IMAPClient, upstream: Upstream) -> None:
    other.append("INBOX", b"Received: from x by y; Tue, 02 Jun 2026 08:00:00 +0000\r\n"
                          b"From: a@example.com\r\nSubject: Imported\r\n\r\nbody\r\n")  # fmt: skip
    [original] = query(jmap)
    blob = jmap.call("Email/get", {"ids": [original], "properties": ["blobId"]})["list"][0]
    # Cyrus gives the same bytes the same EMAILID: a different message for it to import.
    upload = jmap.session["uploadUrl"].format(accountId=jmap.account_id)
    fresh = jmap.http.post(upload, content=b"Received: from x by y; Tue, 02 Jun 2026 08:00:00 "
                           b"+0000\r\nFrom: a@example.com\r\nSubject: Fresh\r\n\r\nbody\r\n",
                           headers={"Content-Type": "message/rfc822"}).json()  # fmt: skip
    source = fresh if isinstance(upstream, Cyrus) else blob
    archive = jmap.mailboxes()["Archive"]["id"]
    state = jmap.call("Email/get", {"ids": []})["state"]
    result = jmap.call("Email/import", {"ifInState": state, "emails": {
        "i": {"blobId": source["blobId"], "mailboxIds": {archive: True},
              "keywords": {"$seen": True}},
        "bad": {"blobId": "Bnope", "mailboxIds": {archive: True}},
        "nobox": {"blobId": blob["blobId"], "mailboxIds": {}},
    }})  # fmt: skip
    created = result["created"]["i"]
    assert created["id"] != original and result["newState"] != state
    assert result["notCreated"]["bad"]["properties"] == ["blobId"]
    assert result["notCreated"]["nobox"]["properties"] == ["mailboxIds"]
    other.select_folder("Archive", readonly=True)
    [data] = other.fetch(other.search("ALL"), ["FLAGS", "INTERNALDATE"]).values()
    assert b"\\Seen" in data[b"FLAGS"]
    assert data[b"INTERNALDATE"].day == 2  # from the Received header
    stale = jmap.call("Email/import", {"ifInState": state, "emails": {}})
    assert stale["error"]["type"] == "stateMismatch"
    same = jmap.call("Email/copy", {"fromAccountId": jmap.account_id, "create": {}})
    assert same["error"]["type"] == "invalidArguments"
    elsewhere = jmap.call("Email/copy", {"fromAccountId": "other", "create": {}})
    assert elsewhere["error"]["type"] == "fromAccountNotFound"


def test_import_an_uploaded_message_with_bare_line_feeds(
    jmap: JmapClient, other: IMAPClient
) -> None:
    upload = jmap.session["uploadUrl"].format(accountId=jmap.account_id)
    raw = b"From: a@example.com\nSubject: Uploaded\nMessage-ID: <up@x>\n\nline one\nline two\n"
    blob = jmap.http.post(upload, content=raw, headers={"Content-Type": "message/rfc822"}).json()
    inbox = jmap.mailboxes()["INBOX"]["id"]
    result = jmap.call("Email/import", {"emails": {
        "u": {"blobId": blob["blobId"], "mailboxIds": {inbox: True}}}})  # fmt: skip
    created = result["created"]["u"]
    got = jmap.call("Email/get", {"ids": [created["id"]], "properties": ["subject", "messageId"]})
    assert got["list"][0] == {"id": created["id"], "subject": "Uploaded", "messageId": ["up@x"]}
    other.select_folder("INBOX", readonly=True)
    [data] = other.fetch(other.search("ALL"), ["BODY[]"]).values()
    assert data[b"BODY[]"] == raw.replace(b"\n", b"\r\n")
    not_mail = jmap.http.post(upload, content=b"\x89PNG\r\n\x1a\n",
                              headers={"Content-Type": "image/png"}).json()  # fmt: skip
    refused = jmap.call("Email/import", {"emails": {
        "p": {"blobId": not_mail["blobId"], "mailboxIds": {inbox: True}}}})  # fmt: skip
    assert refused["notCreated"]["p"]["type"] == "invalidEmail"


def test_a_duplicate_is_a_new_email_or_already_exists_never_a_hidden_copy(
    jmap: JmapClient, other: IMAPClient
) -> None:
    """Importing an Email's own blob, or creating the same bytes twice: a second Email
    (Dovecot) or alreadyExists with the first one's id (Cyrus, whose EMAILID comes from the
    content); never a second IMAP message that no Email shows (RFC 8621 §4.8)."""
    other.append("INBOX", message(1, "Twice"))
    [original] = query(jmap)
    blob = jmap.call("Email/get", {"ids": [original], "properties": ["blobId"]})["list"][0]
    inbox = jmap.mailboxes()["INBOX"]["id"]
    email = {"mailboxIds": {inbox: True}, "subject": "Made", "messageId": ["made@example.com"],
             "sentAt": "2026-06-01T10:00:00Z", "from": [{"email": "a@example.com"}],
             "bodyValues": {"b": {"value": "same"}},
             "textBody": [{"partId": "b", "type": "text/plain"}]}  # fmt: skip
    imported = jmap.call("Email/import", {"emails": {
        "d": {"blobId": blob["blobId"], "mailboxIds": {inbox: True}}}})  # fmt: skip
    made = [jmap.call("Email/set", {"create": {"m": email}}) for _ in range(2)]
    outcomes = [(imported, "d", original), (made[1], "m", made[0]["created"]["m"]["id"])]
    emails = set(query(jmap))
    messages = 2  # the first of each pair
    for result, key, first in outcomes:
        if result["created"]:
            assert result["created"][key]["id"] != first
            assert {first, result["created"][key]["id"]} <= emails
            messages += 1
        else:
            refused = result["notCreated"][key]
            assert refused["type"] == "alreadyExists" and refused["existingId"] == first
            assert first in emails
    other.select_folder("INBOX", readonly=True)
    assert len(other.search("ALL")) == messages == len(emails)


def test_a_duplicate_whose_original_goes_meanwhile_is_kept(
    jmap: JmapClient, other: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing an Email's own blob where the server files the same bytes under the same
    Email (Cyrus): the new message would go as a duplicate, but another client expunged the
    original just before. The new one is then the only copy, and stays (on Dovecot every
    import is a new Email anyway)."""
    other.append("INBOX", message(1, "Once"))
    [original] = query(jmap)
    blob = jmap.call("Email/get", {"ids": [original], "properties": ["blobId"]})["list"][0]
    inbox = jmap.mailboxes()["INBOX"]["id"]

    def expunge_the_original() -> None:
        other.select_folder("INBOX")
        other.delete_messages(min(other.search("ALL")))
        other.expunge()
        other.unselect_folder()

    between_sync_and_write(monkeypatch, EmailSetter, "_refuse_duplicate", expunge_the_original)
    imported = jmap.call("Email/import", {"emails": {
        "d": {"blobId": blob["blobId"], "mailboxIds": {inbox: True}}}})  # fmt: skip
    assert imported["created"] is not None and "d" in imported["created"], imported
    assert set(flags_in(other, "INBOX")) == {b"Once"}
    assert query(jmap) == [imported["created"]["d"]["id"]]


def test_a_destroy_of_a_message_moved_away_meanwhile_destroys_it_where_it_went(
    jmap: JmapClient, other: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    other.append("INBOX", message(1, "Moved"))
    [email_id] = query(jmap)
    between_sync_and_write(
        monkeypatch, EmailSetter, "_destroy_once", lambda: move_all(other, "INBOX", "Archive")
    )
    result = jmap.call("Email/set", {"destroy": [email_id]})
    assert result["destroyed"] == [email_id], result
    assert flags_in(other, "INBOX") == {} and flags_in(other, "Archive") == {}


def test_a_move_of_a_message_moved_away_meanwhile_moves_it_from_where_it_went(
    jmap: JmapClient, other: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    other.append("INBOX", message(1, "Moved"))
    trash = jmap.mailboxes()["Trash"]["id"]
    [email_id] = query(jmap)
    between_sync_and_write(
        monkeypatch, EmailSetter, "_update_once", lambda: move_all(other, "INBOX", "Archive")
    )
    result = jmap.call("Email/set", {"update": {email_id: {"mailboxIds": {trash: True}}}})
    assert result["updated"] == {email_id: None}, result
    assert set(flags_in(other, "Trash")) == {b"Moved"}
    assert flags_in(other, "INBOX") == {} and flags_in(other, "Archive") == {}


def test_a_flag_for_a_message_expunged_meanwhile_is_not_updated(
    jmap: JmapClient, other: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    other.append("INBOX", message(1, "Gone"))
    [email_id] = query(jmap)
    between_sync_and_write(
        monkeypatch, EmailSetter, "_update_once", lambda: expunge_all(other, "INBOX")
    )
    result = jmap.call("Email/set", {"update": {email_id: {"keywords/$flagged": True}}})
    assert result["notUpdated"][email_id]["type"] == "notFound", result
    assert jmap.call("Email/get", {"ids": [email_id]})["notFound"] == [email_id]


def test_a_flag_taken_off_copies_that_differ_is_updated(
    jmap: JmapClient, other: IMAPClient
) -> None:
    """The Email is in INBOX and Archive, flagged only in Archive: the STORE that takes the
    flag off changes nothing in INBOX, and the server says nothing of that copy."""
    other.append("INBOX", message(1, "Twice"))
    archive = jmap.mailboxes()["Archive"]["id"]
    [email_id] = query(jmap)
    jmap.call("Email/set", {"update": {email_id: {f"mailboxIds/{archive}": True,
                                                  "keywords/$flagged": True}}})  # fmt: skip
    other.select_folder("INBOX")
    other.remove_flags(other.search("ALL"), [b"\\Flagged"])
    other.unselect_folder()
    got = jmap.call("Email/get", {"ids": [email_id], "properties": ["keywords"]})
    assert got["list"][0]["keywords"] == {"$flagged": True}
    result = jmap.call("Email/set", {"update": {email_id: {"keywords/$flagged": None}}})
    assert result["updated"] == {email_id: None}, result
    assert flags_in(other, "INBOX") == {b"Twice": set()}
    assert flags_in(other, "Archive") == {b"Twice": set()}


def test_a_write_that_keeps_missing_is_a_server_fail_not_a_success(
    jmap: JmapClient, other: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client moves the message again before each of the request's tries: after
    three, the Email is answered `serverFail`, never `updated`."""
    other.append("INBOX", message(1, "Restless"))
    [email_id] = query(jmap)
    folders = ["INBOX", "Archive"]
    tries: list[int] = []
    update_once = EmailSetter._update_once

    def moving_first(self: EmailSetter, *args: Any) -> Any:
        tries.append(1)
        move_all(other, folders[0], folders[1])
        folders.reverse()
        return update_once(self, *args)

    monkeypatch.setattr(EmailSetter, "_update_once", moving_first)
    result = jmap.call("Email/set", {"update": {email_id: {"keywords/$flagged": True}}})
    assert result["notUpdated"][email_id]["type"] == "serverFail", result
    assert len(tries) == 3
    monkeypatch.undo()
    assert {subject for folder in ("INBOX", "Archive") for subject in flags_in(other, folder)} == {
        b"Restless"
    }
