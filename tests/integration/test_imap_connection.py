"""ImapConnection against a real Dovecot."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import ImapConnection, MailboxListing, QresyncParams, UpstreamConfig
from bridge.imap.errors import AuthFailed, CommandFailed, UpstreamUnavailable
from bridge.imap.flags import flags_to_keywords
from bridge.imap.responses import ObjectIds
from bridge.imap.session import connect_session, shutdown_quietly
from tests.integration.conftest import IMAP4D_USERS, USERS, logged_in
from tests.integration.upstreams import Upstream

GUID = re.compile(r"[0-9a-f]{32}")
NO_LIST_EXTENSIONS = ("LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "CONDSTORE", "QRESYNC")


def config_for(server: Dovecot, timeout: float = 10.0) -> UpstreamConfig:
    return UpstreamConfig(server.host, server.port, tls="plain", timeout=timeout)


def open_alice(server: Dovecot) -> ImapConnection:
    return ImapConnection.open(config_for(server), "alice", USERS["alice"])


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def add_messages(client: IMAPClient, folder: str, count: int) -> None:
    for number in range(count):
        message = f"Subject: message {number}\r\nMessage-ID: <{number}.{folder}@test>\r\n\r\nhi\r\n"
        client.append(folder, message.encode())


@pytest.fixture
def conn(dovecot: Dovecot) -> Iterator[ImapConnection]:
    connection = open_alice(dovecot)
    yield connection
    connection.close()


@pytest.fixture
def folder(imap: IMAPClient) -> str:
    """A fresh folder holding five messages (UIDs 1-5), made by the other client."""
    name = unique("box")
    imap.create_folder(name)
    add_messages(imap, name, 5)
    return name


# -- connecting ---------------------------------------------------------------------------


def test_open_reads_capabilities_and_enables_qresync(conn: ImapConnection) -> None:
    assert conn.has("qresync") and conn.has("LIST-STATUS") and not conn.has("OBJECTID")
    assert conn.enabled == frozenset({"QRESYNC", "CONDSTORE"})
    assert conn.object_ids is ObjectIds.DOVECOT  # from the greeting: no ID round trip
    # Dovecot's greeting carries its capabilities: no CAPABILITY command before LOGIN.
    assert conn.commands == ["LOGIN", "ENABLE"]
    assert conn.delimiter == "/"


def test_obeys_the_advertised_capabilities(dovecot_nocondstore: Dovecot) -> None:
    with open_alice(dovecot_nocondstore) as conn:
        assert not conn.modseq and not conn.qresync and conn.enabled == frozenset()
        assert conn.commands == ["LOGIN"]  # no ENABLE


# What bridge acts on before LOGIN: whether and how it may authenticate.
def _before_login(capabilities: Iterable[str]) -> set[str]:
    return {
        c for c in capabilities
        if c in ("STARTTLS", "LOGINDISABLED", "SASL-IR") or c.startswith(("AUTH=", "IMAP4"))
    }  # fmt: skip


@pytest.mark.parametrize("name", ["dovecot", "cyrus", "imap4d"])
def test_capabilities_from_the_greeting_are_what_the_command_says(
    name: str, request: pytest.FixtureRequest
) -> None:
    """Taken from the greeting where it has them (no CAPABILITY sent), asked for where it
    has not. Cyrus's greeting lists only what matters before LOGIN (its CAPABILITY answer
    then lists everything): those agree, and after LOGIN bridge has the server's full
    list either way."""
    server = request.getfixturevalue(name)
    user, password = (
        (server.login("user01"), IMAP4D_USERS["user01"]) if name == "imap4d"
        else ("alice", USERS["alice"])
    )  # fmt: skip
    config = UpstreamConfig(server.host, server.port, tls="plain")
    session = connect_session(config)
    try:
        raw = session.client._imap
        greeted = b"[CAPABILITY " in (raw.welcome or b"")
        assert list(session.wire.commands) == ([] if greeted else ["CAPABILITY"])
        _, answer = raw.capability()
        asked = answer[-1].decode().upper().split()
        assert _before_login(session.capabilities) == _before_login(asked)
    finally:
        shutdown_quietly(session.client)
    with (
        ImapConnection.open(config, user, password) as conn,
        logged_in(server, user, password) as other,
    ):
        _, answer = other._imap.capability()
        assert conn.capabilities == frozenset(answer[-1].decode().upper().split())


def test_wrong_password(dovecot_login_failures: Dovecot) -> None:
    with pytest.raises(AuthFailed) as failure:
        ImapConnection.open(config_for(dovecot_login_failures), "alice", "not-the-password")
    assert failure.value.code == "AUTHENTICATIONFAILED"


def test_password_that_needs_quoting_and_a_literal(
    dovecot_factory: Callable[..., Dovecot],
) -> None:
    password = 'p"ä \\ {3}x'
    server = dovecot_factory(users={"carol": password})
    with ImapConnection.open(config_for(server), "carol", password) as conn:
        conn.noop()


# -- folders ------------------------------------------------------------------------------


def test_list_mailboxes_in_one_round_trip(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    parent = unique("parent")
    imap.create_folder(f"{parent}/child")
    imap.select_folder(folder)
    imap.add_flags([1, 2], [b"\\Seen"])
    before = conn.command_count
    listings = {listing.name: listing for listing in conn.list_mailboxes()}
    assert conn.command_count - before == 1 and conn.commands[-1] == "LIST"

    inbox = listings["INBOX"]
    assert inbox.selectable and inbox.delimiter == "/" and inbox.special_use is None
    drafts = listings["Drafts"]
    assert drafts.special_use == "\\Drafts" and drafts.subscribed
    assert "\\drafts" in drafts.attributes

    status = listings[folder].status
    assert status is not None
    assert (status.messages, status.unseen, status.uidnext) == (5, 3, 6)
    assert status.uidvalidity > 0 and status.highestmodseq is not None
    assert status.guid is not None and GUID.fullmatch(status.guid)

    # A folder that exists only as a parent is reported, not selectable, without status.
    assert listings[parent].selectable is False and listings[parent].status is None
    assert "\\haschildren" in listings[parent].attributes
    assert listings[f"{parent}/child"].selectable


def test_list_mailboxes_without_condstore(dovecot_nocondstore: Dovecot) -> None:
    with open_alice(dovecot_nocondstore) as conn:
        before = conn.command_count
        listings = {listing.name: listing for listing in conn.list_mailboxes()}
        assert conn.command_count - before == 1
    status = listings["INBOX"].status
    assert status is not None and status.highestmodseq is None and status.guid is not None


def test_list_mailboxes_fallback_without_list_extended(
    dovecot_factory: Callable[..., Dovecot],
) -> None:
    server = dovecot_factory(hide=NO_LIST_EXTENSIONS)
    client = IMAPClient(server.host, port=server.port, ssl=False)
    client.login("alice", USERS["alice"])
    client.create_folder("shown/inner")
    client.subscribe_folder("shown/inner")
    add_messages(client, "shown/inner", 2)
    client.logout()
    with open_alice(server) as conn:
        before = conn.command_count
        listings = {listing.name: listing for listing in conn.list_mailboxes()}
        selectable = [listing for listing in listings.values() if listing.selectable]
        assert conn.command_count - before == 2 + len(selectable)
        assert conn.commands[before - conn.command_count :][:2] == ["LIST", "LSUB"]
    inner = listings["shown/inner"]
    assert inner.subscribed and inner.status is not None and inner.status.messages == 2
    assert inner.status.guid is not None and inner.status.highestmodseq is None
    assert listings["shown"].selectable is False
    assert listings["Drafts"].subscribed and listings["Drafts"].special_use == "\\Drafts"
    assert not listings["INBOX"].subscribed


def test_status(conn: ImapConnection, folder: str) -> None:
    status = conn.status(folder)
    assert (status.messages, status.unseen, status.uidnext) == (5, 5, 6)
    assert status.guid is not None and status.highestmodseq is not None


def test_mailbox_guid_survives_rename_by_another_client(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    guid = conn.status(folder).guid
    renamed = unique("renamed")
    imap.rename_folder(folder, renamed)
    listings = {listing.name: listing for listing in conn.list_mailboxes()}
    assert folder not in listings
    renamed_status = listings[renamed].status
    assert renamed_status is not None and renamed_status.guid == guid


def test_create_rename_subscribe_delete(conn: ImapConnection) -> None:
    name = unique("own")
    conn.create(name)
    conn.subscribe(name)
    assert _listing(conn, name).subscribed
    conn.unsubscribe(name)
    assert not _listing(conn, name).subscribed
    conn.rename(name, f"{name}-new")
    conn.delete(f"{name}-new")
    names = {listing.name for listing in conn.list_mailboxes()}
    assert name not in names and f"{name}-new" not in names


def test_create_with_special_use(conn: ImapConnection) -> None:
    # Dovecot 2.3 lacks CREATE-SPECIAL-USE (and /private/specialuse is read-only), so the
    # folder is created plain: callers check has("CREATE-SPECIAL-USE") when it matters.
    assert not conn.has("CREATE-SPECIAL-USE")
    name = unique("archive")
    conn.create(name, special_use="\\Archive")
    assert _listing(conn, name).special_use is None


def test_failures_carry_status_and_code(conn: ImapConnection, folder: str) -> None:
    with pytest.raises(CommandFailed) as failure:
        conn.rename(unique("missing"), unique("x"))
    assert (failure.value.command, failure.value.status) == ("RENAME", "NO")
    assert failure.value.code == "NONEXISTENT"
    with pytest.raises(CommandFailed) as failure:
        conn.select(unique("missing"))
    assert failure.value.status == "NO" and conn.selected is None
    with pytest.raises(CommandFailed) as failure:
        conn.fetch_meta("1:*")  # nothing selected
    assert failure.value.status == "BAD"
    assert not conn.broken


@pytest.mark.parametrize(
    "name",
    [
        'Réunions "Q3" \\ 2026',
        "日本語/サブ",
        "Tom & Jerry",
        "NIL",
        "2026",
        "100% * done",
        "{3}",
        "a(b)c",
    ],
)
def test_odd_names_round_trip(conn: ImapConnection, imap: IMAPClient, name: str) -> None:
    name = f"{name} {uuid.uuid4().hex[:6]}"
    conn.create(name)
    try:
        listing = _listing(conn, name)
        assert listing.selectable and listing.status is not None
        assert conn.status(name).messages == 0
        # Another client sees the very same name.
        assert name in {entry[2] for entry in imap.list_folders()}
        imap.append(name, b"Subject: x\r\n\r\nbody\r\n")
        assert conn.select(name).exists == 1
        conn.subscribe(name)
        assert _listing(conn, name).subscribed
        conn.rename(name, f"{name} (old)")
        assert conn.status(f"{name} (old)").messages == 1
    finally:
        for leftover in (name, f"{name} (old)"):
            with contextlib.suppress(CommandFailed):
                conn.delete(leftover)


def test_control_characters_reach_dovecot_safely_and_are_refused(conn: ImapConnection) -> None:
    with pytest.raises(CommandFailed) as failure:
        conn.create("tab\there")
    assert failure.value.code == "CANNOT" and not conn.broken


INJECTIONS_REJECTED = [
    "INBOX\r\nA1 DELETE INBOX",
    "x\nA1 CREATE pwned",
    "x\rA1 CREATE pwned",
    "x\x00",
]
INJECTIONS_LITERAL = [
    'x" DELETE "INBOX',
    'x"\\',
    "x) (y",
    "* %",
]


def test_injection_attempts_in_names_touch_nothing_else(
    conn: ImapConnection, imap: IMAPClient
) -> None:
    sentinel = unique("keep")
    conn.create(sentinel)
    before = {listing.name for listing in conn.list_mailboxes()}
    calls: list[Callable[[str], object]] = [
        conn.create,
        conn.delete,
        lambda evil: conn.rename(sentinel, evil),
        conn.select,
        conn.status,
        conn.subscribe,
    ]
    for evil in INJECTIONS_REJECTED:
        for call in calls:
            with pytest.raises(ValueError):
                call(evil)
    assert not conn.broken
    assert {listing.name for listing in conn.list_mailboxes()} == before
    created = []
    for evil in INJECTIONS_LITERAL:
        name = f"{evil} {uuid.uuid4().hex[:6]}"
        conn.create(name)
        created.append(name)
    after = {listing.name for listing in conn.list_mailboxes()}
    # Exactly the literal names appeared; INBOX and the sentinel are untouched.
    assert after == before | set(created)
    assert "INBOX" in after and sentinel in after
    for name in created:
        conn.delete(name)
    assert {listing.name for listing in conn.list_mailboxes()} == before


# -- messages -----------------------------------------------------------------------------


def test_select_and_fetch(conn: ImapConnection, folder: str) -> None:
    selected = conn.select(folder)
    assert (selected.exists, selected.uidnext, selected.readonly) == (5, 6, True)
    assert selected.highestmodseq is not None and conn.selected == folder
    assert selected.vanished == frozenset() and selected.changed == {}
    items = ("RFC822.SIZE", "INTERNALDATE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)]")
    before = conn.command_count
    messages = conn.fetch_meta("1:*", extra=items).messages
    assert conn.command_count - before == 1
    assert sorted(messages) == [1, 2, 3, 4, 5]
    meta = messages[3]
    assert flags_to_keywords(meta.flags) == set() and meta.modseq is not None and meta.object_id
    assert meta.raw["RFC822.SIZE"] > 0
    assert meta.raw["INTERNALDATE"].timestamp() > 0
    header = meta.raw["BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)]"]
    assert b"Subject: message 2" in header and f"<2.{folder}@test>".encode() in header
    assert len({m.object_id for m in messages.values()}) == 5
    writable = conn.select(folder, readonly=False)
    assert writable.readonly is False and "\\*" in writable.permanent_flags


def test_fetch_of_a_range_past_the_end(conn: ImapConnection, folder: str) -> None:
    conn.select(folder)
    # "n:*" always includes the highest UID (RFC 3501): the result says so honestly.
    assert sorted(conn.fetch_meta("9:*").messages) == [5]
    assert conn.fetch_meta("7:8").messages == {}


def test_select_with_qresync_after_another_client(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    first = conn.select(folder)
    assert first.highestmodseq is not None
    imap.select_folder(folder)
    imap.add_flags([2], [b"\\Seen", b"$Label"])
    imap.add_flags([5], [b"\\Flagged"])
    imap.delete_messages([3, 4])
    imap.expunge()
    add_messages(imap, folder, 1)  # UID 6
    conn.select("INBOX")  # leave the folder, as a later sync would come back to it
    params = QresyncParams(first.uidvalidity, first.highestmodseq)
    again = conn.select(folder, qresync=params)
    assert again.vanished == frozenset({3, 4})
    assert sorted(again.changed) == [2, 5, 6]
    assert flags_to_keywords(again.changed[2].flags) == {"$seen", "$label"}
    assert flags_to_keywords(again.changed[5].flags) == {"$flagged"}
    assert (again.exists, again.uidnext) == (4, 7)
    assert again.highestmodseq is not None and again.highestmodseq > first.highestmodseq
    # With the UIDs the client knows, VANISHED is limited to them.
    known = conn.select(
        folder, qresync=QresyncParams(first.uidvalidity, first.highestmodseq, "1:3")
    )
    assert known.vanished == frozenset({3})
    # A stale UIDVALIDITY gets no delta at all.
    stale = conn.select(folder, qresync=QresyncParams(first.uidvalidity + 1, 1))
    assert stale.vanished == frozenset() and stale.changed == {}


def test_reopening_after_a_refreshed_listing_trusts_its_status(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    """A sync's NOOP and LIST-STATUS with a folder open say what a NOOP and a STATUS would
    say again when the folder is reopened right after: those two round trips are not sent.
    Any command between, and the reopening asks again."""
    first = conn.select(folder)
    add_messages(imap, folder, 2)  # UIDs 6 and 7, by another client
    conn.noop()
    conn.list_mailboxes()
    before = conn.command_count
    params = QresyncParams(first.uidvalidity, first.highestmodseq or 0)
    again = conn.select(folder, qresync=params)
    assert conn.commands[before - conn.command_count :] == ["UID FETCH"]  # the delta alone
    assert (again.exists, again.uidnext) == (7, 8)
    assert sorted(again.changed) == [6, 7]
    assert again.highestmodseq is not None and again.highestmodseq > (first.highestmodseq or 0)
    # A command between the listing and the reopening: a NOOP and a STATUS again, which
    # see what came since.
    add_messages(imap, folder, 1)  # UID 8
    conn.noop()
    conn.list_mailboxes()
    conn.fetch_meta("1")
    before = conn.command_count
    latest = conn.select(folder)
    assert conn.commands[before - conn.command_count :] == ["NOOP", "STATUS"]
    assert (latest.exists, latest.uidnext) == (8, 9)
    # A listing without the NOOP before it does not stand for one either.
    add_messages(imap, folder, 1)  # UID 9
    conn.list_mailboxes()
    before = conn.command_count
    assert conn.select(folder).exists == 9
    assert conn.commands[before - conn.command_count :] == ["NOOP", "STATUS"]


def test_a_refreshed_listing_stands_for_the_reopening_on_each_server(
    imap_server: Upstream,
) -> None:
    """Dovecot and Cyrus alike: after a NOOP and a LIST-STATUS with INBOX open, reopening
    INBOX sends nothing and says what a STATUS says."""
    config = UpstreamConfig(imap_server.host, imap_server.port, tls="plain")
    with (
        ImapConnection.open(config, "alice", USERS["alice"]) as conn,
        logged_in(imap_server, "alice", USERS["alice"]) as other,
    ):
        first = conn.select("INBOX")
        message = b"Subject: listed\r\nMessage-ID: <listed@test>\r\n\r\nhi\r\n"
        other.append("INBOX", message)
        conn.noop()
        conn.list_mailboxes()
        before = conn.command_count
        again = conn.select("INBOX")
        assert conn.command_count == before
        assert again.exists == first.exists + 1
        status = conn.status("INBOX")
        assert (again.exists, again.uidnext) == (status.messages, status.uidnext)


def test_fetch_meta_changedsince(conn: ImapConnection, imap: IMAPClient, folder: str) -> None:
    first = conn.select(folder)
    assert first.highestmodseq is not None
    imap.select_folder(folder)
    imap.add_flags([1], [b"\\Answered"])
    imap.delete_messages([4])
    imap.expunge()
    conn.select("INBOX")
    conn.select(folder)
    changed = conn.fetch_meta("1:*", changedsince=first.highestmodseq)
    assert sorted(changed.messages) == [1] and changed.vanished == frozenset()
    assert changed.messages[1].flags == ("\\Answered",)
    assert changed.messages[1].modseq is not None
    assert changed.messages[1].modseq > first.highestmodseq
    with_vanished = conn.fetch_meta("1:*", changedsince=first.highestmodseq, vanished=True)
    assert with_vanished.vanished == frozenset({4}) and sorted(with_vanished.messages) == [1]
    assert conn.search_all_uids() == [1, 2, 3, 5]


def test_expunge_while_selected_is_reported(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    conn.select(folder)
    imap.select_folder(folder)
    imap.delete_messages([2])
    imap.expunge()
    result = conn.fetch_meta("1:*")
    assert 2 in result.vanished and 2 not in result.messages


def test_object_id_survives_copy_and_move(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    copies, moved = unique("copies"), unique("moved")
    imap.create_folder(copies)
    imap.create_folder(moved)
    conn.select(folder)
    originals = {uid: meta.object_id for uid, meta in conn.fetch_meta("1:2").messages.items()}
    imap.select_folder(folder)
    imap.copy([1], copies)
    imap.move([2], moved)
    conn.select(copies)
    (copied,) = conn.fetch_meta("1:*").messages.values()
    assert copied.object_id == originals[1]
    conn.select(moved)
    (moved_meta,) = conn.fetch_meta("1:*").messages.values()
    assert moved_meta.object_id == originals[2]
    assert originals[1] != originals[2]


def test_without_condstore(dovecot_nocondstore: Dovecot) -> None:
    name = unique("plain")
    client = IMAPClient(dovecot_nocondstore.host, port=dovecot_nocondstore.port, ssl=False)
    client.login("alice", USERS["alice"])
    client.create_folder(name)
    add_messages(client, name, 3)
    with open_alice(dovecot_nocondstore) as conn:
        selected = conn.select(name)
        assert selected.highestmodseq is None and selected.exists == 3
        messages = conn.fetch_meta("1:*").messages
        assert all(m.modseq is None and m.object_id for m in messages.values())
        with pytest.raises(ValueError):
            conn.fetch_meta("1:*", changedsince=1)
        with pytest.raises(ValueError):
            conn.select(name, qresync=QresyncParams(selected.uidvalidity, 1))
        client.select_folder(name)
        client.delete_messages([2])
        client.expunge()
        conn.noop()  # the session learns of the expunge (a sync SELECTs instead)
        assert conn.search_all_uids() == [1, 3]
        assert conn.commands[-1] == "UID SEARCH"
    client.logout()


def test_search_all_uids_without_esearch(dovecot_factory: Callable[..., Dovecot]) -> None:
    server = dovecot_factory(hide=NO_LIST_EXTENSIONS)
    client = IMAPClient(server.host, port=server.port, ssl=False)
    client.login("bob", USERS["bob"])
    add_messages(client, "INBOX", 3)
    client.logout()
    with ImapConnection.open(config_for(server), "bob", USERS["bob"]) as conn:
        assert not conn.has("ESEARCH")
        conn.select("INBOX")
        assert conn.search_all_uids() == [1, 2, 3]


def test_empty_folder(conn: ImapConnection) -> None:
    name = unique("empty")
    conn.create(name)
    selected = conn.select(name)
    assert selected.exists == 0 and selected.uidnext == 1
    assert conn.search_all_uids() == []
    assert conn.fetch_meta("1:*").messages == {}


# -- dead connections ---------------------------------------------------------------------


def test_a_killed_connection_is_unavailable_and_broken(dovecot: Dovecot) -> None:
    conn = open_alice(dovecot)
    assert conn.is_alive() and conn.is_alive(probe=True)
    conn._client.shutdown()
    assert not conn.is_alive()
    with pytest.raises(UpstreamUnavailable):
        conn.noop()
    assert conn.broken
    conn.close()  # never raises


def test_myrights_without_acl(conn: ImapConnection) -> None:
    assert conn.myrights("INBOX") is None
    assert "MYRIGHTS" not in conn.commands


def _listing(conn: ImapConnection, name: str) -> MailboxListing:
    for listing in conn.list_mailboxes():
        if listing.name == name:
            return listing
    raise AssertionError(f"{name!r} not listed")


# -- expunging exactly some messages without UIDPLUS ---------------------------------------
# Against Dovecot with UIDPLUS hidden from bridge's side (the server still takes a bare
# EXPUNGE), so that the other client can act in the window between bridge's UID SEARCH
# DELETED and its EXPUNGE.


def without_uidplus(conn: ImapConnection, imap: IMAPClient, folder: str) -> None:
    """``folder`` open read-write on ``conn``, which forgets UIDPLUS; UID 2 marked
    \\Deleted by the other client, not expunged."""
    conn.capabilities = conn.capabilities - {"UIDPLUS"}
    imap.select_folder(folder)
    imap.add_flags([2], [b"\\Deleted"], silent=True)
    conn.select(folder, readonly=False)


def in_the_window(
    conn: ImapConnection, monkeypatch: pytest.MonkeyPatch, act: Callable[[], object]
) -> None:
    """Run ``act`` after the others' marks are lifted and ours set, just before the
    EXPUNGE."""
    run = conn._wire.run

    def acting_first(command: bytes, *args: Any, **kwargs: Any) -> Any:
        if command == b"EXPUNGE":
            act()
        return run(command, *args, **kwargs)

    monkeypatch.setattr(conn._wire, "run", acting_first)


def deleted_flags(imap: IMAPClient, folder: str) -> dict[int, bool]:
    imap.select_folder(folder)
    return {
        uid: b"\\Deleted" in data[b"FLAGS"]
        for uid, data in imap.fetch(imap.search("ALL"), ["FLAGS"]).items()
    }


def test_only_ours_go_and_others_marks_come_back(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    without_uidplus(conn, imap, folder)
    conn.expunge_uids("3:4")
    assert deleted_flags(imap, folder) == {1: False, 2: True, 5: False}


def test_a_message_marked_in_the_window_goes_too_and_is_logged(
    conn: ImapConnection,
    imap: IMAPClient,
    folder: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    without_uidplus(conn, imap, folder)
    in_the_window(conn, monkeypatch, lambda: imap.add_flags([4], [b"\\Deleted"], silent=True))
    with caplog.at_level(logging.WARNING, logger="bridge.imap"):
        conn.expunge_uids("3")
    assert deleted_flags(imap, folder) == {1: False, 2: True, 5: False}
    assert "removed more than ours: UIDs 4 and 0 message(s)" in caplog.text


def test_ours_unmarked_in_the_window_is_a_failure(
    conn: ImapConnection, imap: IMAPClient, folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_uidplus(conn, imap, folder)
    in_the_window(conn, monkeypatch, lambda: imap.remove_flags([3], [b"\\Deleted"], silent=True))
    with pytest.raises(CommandFailed):
        conn.expunge_uids("3")
    assert deleted_flags(imap, folder) == {1: False, 2: True, 3: False, 4: False, 5: False}


def test_messages_gone_already_are_no_error(
    conn: ImapConnection, imap: IMAPClient, folder: str
) -> None:
    without_uidplus(conn, imap, folder)
    imap.add_flags([5], [b"\\Deleted"], silent=True)
    imap.uid_expunge([5])  # the other client has UIDPLUS
    conn.expunge_uids("5")
    assert deleted_flags(imap, folder) == {1: False, 2: True, 3: False, 4: False}
