"""bridge.imap.search against a real Dovecot and a real Cyrus: the criteria it builds are
accepted, literals and CHARSET UTF-8 included, and select the expected messages (after the
post-filter)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.cyrus import Cyrus
from bridge.imap.connection import ImapConnection, UpstreamConfig
from bridge.imap.responses import atoms, parse_search
from bridge.imap.search import SearchPlan, plan_search, plan_sort
from tests.integration.conftest import USERS
from tests.integration.upstreams import Upstream


def day(n: int) -> datetime:
    return datetime(2026, 1, n, 12, 0, tzinfo=UTC)


# (headers, body, flags, internal date); UIDs are 1..10 in this order.
MESSAGES: list[tuple[str, bytes, tuple[bytes, ...], datetime]] = [
    (
        "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: Quarterly report",
        b"numbers attached",
        (b"\\Seen",),
        day(5),
    ),
    (
        "From: Bob <bob@example.com>\r\nSubject: Lunch plans",
        b"pizza",
        (b"\\Flagged", b"$label"),
        day(6),
    ),
    (
        "From: carol@example.com\r\nSubject: =?utf-8?q?Caf=C3=A9_meeting?=\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit",
        "naïve résumé".encode(),
        (),
        day(7),
    ),
    (
        "From: Dave <dave@example.com>\r\nSubject: Re: Quarterly report\r\nX-Tracker: 42",
        b"ok",
        (b"\\Answered",),
        day(8),
    ),
    ("From: Erin <erin@example.com>\r\nSubject: Big", b"x" * 5000, (), day(9)),
    (
        "From: Alice <alice@example.com>\r\nSubject: Minutes",
        b"the meeting notes are here",
        (),
        day(10),
    ),
    ("From: Frank <frank@example.com>\r\nSubject: notes", b"meeting later", (), day(11)),
    ("From: Gina <gina@example.com>\r\nSubject: =?utf-8?b?5pel5pys6Kqe?=", b"hello", (), day(12)),
    (
        "From: Hank <hank@example.com>\r\nSubject: Lists\r\nList-Id: <dev.example.com>",
        b"hi",
        (),
        day(13),
    ),
    ("From: Ivan <ivan@example.com>\r\nSubject: last", b"bye", (), day(14)),
]
ALL_UIDS = set(range(1, len(MESSAGES) + 1))


@dataclass
class Cached:
    """What the caller's cache would know of a message: enough for the post-filter."""

    received_at: datetime
    size: int
    keywords: frozenset[str]
    mailbox_ids: frozenset[str] = frozenset({"box"})
    has_attachment: bool = False
    thread_keywords: tuple[frozenset[str], ...] = ()


@pytest.fixture(scope="module")
def folder(imap_server: Upstream) -> str:
    name = f"search-{uuid.uuid4().hex[:8]}"
    client = IMAPClient(imap_server.host, port=imap_server.port, ssl=False)
    client.login("alice", USERS["alice"])
    client.create_folder(name)
    for headers, body, flags, when in MESSAGES:
        message = headers.encode() + b"\r\n\r\n" + body + b"\r\n"
        client.append(name, message, flags=flags, msg_time=when)
    client.logout()
    return name


@pytest.fixture
def conn(imap_server: Upstream, folder: str) -> Iterator[ImapConnection]:
    config = UpstreamConfig(imap_server.host, imap_server.port, tls="plain", timeout=10)
    connection = ImapConnection.open(config, "alice", USERS["alice"])
    connection.select(folder)
    yield connection
    connection.close()


@pytest.fixture
def cache(conn: ImapConnection) -> dict[int, Cached]:
    found = conn.fetch_meta("1:*", extra=["RFC822.SIZE", "INTERNALDATE"]).messages
    assert len(found) == len(MESSAGES)
    return {
        uid: Cached(
            received_at=meta.raw["INTERNALDATE"],
            size=meta.raw["RFC822.SIZE"],
            keywords=frozenset(flag.lower().replace("\\", "$") for flag in meta.flags),
        )
        for uid, meta in found.items()
    }


def caps(conn: ImapConnection) -> frozenset[str]:
    return frozenset(conn.capabilities)


def search(conn: ImapConnection, plan: SearchPlan) -> set[int]:
    reply = conn._wire.run(plan.search_command()).check()
    return {uid for response in reply.of("SEARCH") for uid in parse_search(response)}


def run(conn: ImapConnection, filter: Any, cache: dict[int, Cached]) -> set[int]:
    """The whole protocol: IMAP search, then the post-filter on cached facts."""
    plan = plan_search(filter, capabilities=caps(conn))
    assert plan.mailbox_ids is None or "box" in plan.mailbox_ids
    return {uid for uid in search(conn, plan) if plan.matches(cache[uid])}


def OR(*conditions: Any) -> dict[str, Any]:
    return {"operator": "OR", "conditions": list(conditions)}


def NOT(*conditions: Any) -> dict[str, Any]:
    return {"operator": "NOT", "conditions": list(conditions)}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({}, ALL_UIDS),
        ({"from": "alice"}, {1, 6}),
        (OR({"subject": "lunch"}, {"from": "dave"}), {2, 4}),
        (OR({"from": "alice"}, {"from": "bob"}, {"from": "erin"}, {"to": "bob"}), {1, 2, 5, 6}),
        (NOT({"from": "alice"}, {"from": "bob"}), ALL_UIDS - {1, 2, 6}),
        (NOT({"from": "alice", "subject": "minutes"}), ALL_UIDS - {6}),
        ({"subject": "café"}, {3}),  # CHARSET UTF-8 and a literal; RFC 2047 decoded
        ({"body": "RÉSUMÉ"}, {3}),
        ({"subject": "日本語"}, {8}),
        ({"text": "meeting notes"}, {6, 7}),  # every token, anywhere
        ({"text": '"meeting notes"'}, {6}),  # a phrase
        ({"header": ["X-Tracker"]}, {4}),
        ({"header": ["List-Id", "dev.example"]}, {9}),
        ({"hasKeyword": "$seen"}, {1}),
        ({"hasKeyword": "$label"}, {2}),
        ({"notKeyword": "$flagged", "hasKeyword": "$answered"}, {4}),
        ({"minSize": 2000}, {5}),
        ({"maxSize": 2000}, ALL_UIDS - {5}),
        ({"after": "2026-01-08T12:00:00Z"}, set(range(4, 11))),
        ({"after": "2026-01-08T12:00:01Z", "before": "2026-01-11T12:00:00Z"}, {5, 6}),
        (NOT({"after": "2026-01-07T11:00:00Z"}), {1, 2}),
        (OR({"before": "2026-01-06T00:00:00Z"}, {"hasKeyword": "$label"}), {1, 2}),
        ({"inMailbox": "box", "text": "pizza"}, {2}),
    ],
)
def test_search(
    conn: ImapConnection, cache: dict[int, Cached], filter: Any, expected: set[int]
) -> None:
    assert run(conn, filter, cache) == expected


def test_date_criteria_are_a_superset(conn: ImapConnection) -> None:
    plan = plan_search({"after": "2026-01-08T12:00:01Z"}, capabilities=caps(conn))
    assert plan.criteria == b"SINCE 7-Jan-2026"
    assert search(conn, plan) == set(range(3, 11))  # before the post-filter drops 3 and 4


def test_synchronizing_literals(
    conn: ImapConnection, cache: dict[int, Cached], imap_server: Upstream
) -> None:
    conn._wire.literal_plus = False  # wait for "+" before each literal
    filter = OR({"subject": "café"}, {"subject": "日本語"}, {"body": '"the meeting\r\nnotes"'})
    plan = plan_search(filter, capabilities=caps(conn))
    assert plan.needs_utf8 and plan.criteria.count(b"}\r\n") == 3
    # Cyrus folds white space when it searches: the line break matches message 6's space.
    folded = {6} if isinstance(imap_server, Cyrus) else set()
    assert run(conn, filter, cache) == {3, 8} | folded


def test_injection_is_only_text(
    conn: ImapConnection, cache: dict[int, Cached], folder: str
) -> None:
    for literal_plus in (True, False):
        conn._wire.literal_plus = literal_plus
        value = f'"zz\r\nA1 DELETE {folder}\r\nA2 LOGOUT"'
        assert run(conn, {"text": value}, cache) == set()
        assert run(conn, {"subject": f"x\r\nA1 DELETE {folder}"}, cache) == set()
    assert conn.status(folder).messages == len(MESSAGES)
    conn.noop()


def test_sort(conn: ImapConnection) -> None:
    keys = [{"property": "from", "collation": "i;unicode-casemap"}, {"property": "receivedAt"}]
    if not any(c.startswith("I18NLEVEL=") for c in caps(conn)):
        # Cyrus: without I18NLEVEL its comparator is i;ascii-casemap (RFC 5256 §3), so
        # bridge sorts by i;unicode-casemap itself, and the server only by i;ascii-casemap.
        assert plan_sort(keys, caps(conn)).criteria is None
        keys[0]["collation"] = "i;ascii-casemap"
    sort = plan_sort(keys, caps(conn))
    assert sort.criteria == b"(DISPLAYFROM ARRIVAL)"
    plan = plan_search(NOT({"subject": "café"}), capabilities=caps(conn))
    reply = conn._wire.run(plan.sort_command(sort)).check()
    (response,) = reply.of("SORT")
    # Alice x2 (by arrival), Bob, Dave, Erin, Frank, Gina, Hank, Ivan; carol is filtered out.
    assert list(atoms(response, "SORT")) == [1, 6, 2, 4, 5, 7, 8, 9, 10]

    reverse = plan_sort([{"property": "receivedAt", "isAscending": False}], caps(conn))
    plan = plan_search({"subject": "日本語"}, capabilities=caps(conn))
    command = plan.sort_command(reverse)
    assert command.startswith(b"UID SORT (REVERSE ARRIVAL) UTF-8 SUBJECT {9}\r\n")
    (response,) = conn._wire.run(command).check().of("SORT")
    assert list(atoms(response, "SORT")) == [8]
