"""Email/query's header sorts (from, to, subject, sentAt) across folders: answered from
the cache's sort keys, in an order that, within each folder, is the upstream's own SORT
order (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO, i;unicode-casemap). Random mail with
non-ASCII and case variants, missing headers and Re:/Fwd: subjects."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from tests.integration.server import BridgeServer, JmapClient

FOLDERS = ("INBOX", "Archive", "Drafts")
NAMES = ["Émile", "emile", "EMILE", "Zoë", "zoe", "Åsa", "adam", "Bob", "bob", "Ölaf", "_x",
         "Ñandú", "Иван", "иван", "Ωmega", "ωmega", "Doe, John", "doe, john", "ß",
         "ss"]  # fmt: skip
BASES = ["hello", "Hello", "HELLO world", "Été", "été", "ete", "zebra", "Äpfel", "apfel",
         "Über", "über", "topic", "Topic", "_under", "Ωmega", "ωmega"]  # fmt: skip
PREFIXES = ["", "", "Re: ", "RE: ", "Fwd: ", "Re: Fwd: ", "fw: ", "[list] ", "[list] Re: "]
SORTS = {"from": "DISPLAYFROM", "to": "DISPLAYTO", "subject": "SUBJECT", "sentAt": "DATE"}
START = datetime(2024, 1, 1, tzinfo=UTC)


def encoded(text: str) -> str:
    if text.isascii():
        return text
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def address(rng: random.Random) -> str:
    mailbox = f"{rng.choice(['ann', 'Zed', 'bea', 'émile', 'mike'])}{rng.randint(1, 9)}@ex.test"
    mailbox = mailbox.encode("ascii", "ignore").decode() or "x@ex.test"
    name = rng.choice([*NAMES, None, None, ""])
    if name is None:
        return mailbox
    if name == "":
        return f'"" <{mailbox}>'
    if "," in name:
        return f'"{name}" <{mailbox}>'
    return f"{encoded(name)} <{mailbox}>"


def message(rng: random.Random, number: int) -> bytes:
    lines = [f"Message-ID: <{number}@sorts.test>"]
    if rng.random() > 0.1:
        lines.append("From: " + ", ".join(address(rng) for _ in range(rng.randint(1, 2))))
    if rng.random() > 0.15:
        lines.append("To: " + ", ".join(address(rng) for _ in range(rng.randint(1, 3))))
    if rng.random() > 0.1:
        subject = rng.choice(PREFIXES) + rng.choice(BASES) + rng.choice(["", "", " (fwd)"])
        lines.append(f"Subject: {encoded(subject)}")
    if rng.random() > 0.15:
        zone = timezone(timedelta(minutes=rng.choice([-480, -60, 0, 60, 330])))
        sent = START + timedelta(minutes=rng.randint(0, 60 * 24 * 30))
        lines.append("Date: " + sent.astimezone(zone).strftime("%a, %d %b %Y %H:%M:%S %z"))
    return ("\r\n".join(lines) + "\r\nContent-Type: text/plain\r\n\r\nbody\r\n").encode()


def server_order(other: IMAPClient, folder: str, criterion: str, ascending: bool) -> list[str]:
    """The Message-IDs of a folder as the upstream's SORT orders them (ARRIVAL breaks
    ties, as receivedAt does in the query)."""
    other.select_folder(folder, readonly=True)
    key = criterion if ascending else f"REVERSE {criterion}"
    uids = other.sort([*key.split(), "ARRIVAL"])
    fetched = other.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    return [
        fetched[uid][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split("<")[1].split(">")[0]
        for uid in uids
    ]


def fill(other: IMAPClient) -> dict[str, set[str]]:
    """Messages in three folders, each arriving a minute after the last: folder ->
    Message-IDs."""
    rng = random.Random(5256)
    held: dict[str, set[str]] = {folder: set() for folder in FOLDERS}
    for number in range(90):
        folder = rng.choice(FOLDERS)
        arrival = (START + timedelta(minutes=number)).replace(tzinfo=None)
        other.append(folder, message(rng, number), msg_time=arrival)
        held[folder].add(f"{number}@sorts.test")
    return held


@pytest.fixture
def random_mail(jmap: JmapClient, other: IMAPClient) -> dict[str, set[str]]:
    return fill(other)


def bridge_order(jmap: JmapClient, sort: list[dict[str, Any]], filter_: Any = None) -> list[str]:
    result = jmap.request([
        ["Email/query", {"accountId": jmap.account_id, "sort": sort, "filter": filter_}, "q"],
        ["Email/get", {"accountId": jmap.account_id, "#ids": {
            "resultOf": "q", "name": "Email/query", "path": "/ids"}, "properties": ["messageId"]},
         "g"],
    ])  # fmt: skip
    assert result[0][0] == "Email/query", result[0]
    by_id = {email["id"]: email["messageId"][0] for email in result[1][1]["list"]}
    return [by_id[email_id] for email_id in result[0][1]["ids"]]


def check_sort(
    jmap: JmapClient,
    other: IMAPClient,
    held: dict[str, set[str]],
    prop: str,
    upstream_sorts: bool = True,
) -> None:
    for ascending in (True, False):
        sort = [{"property": prop, "isAscending": ascending}, {"property": "receivedAt"}]
        everywhere = bridge_order(jmap, sort)
        assert sorted(everywhere) == sorted(set().union(*held.values()))
        for folder, ids in held.items():
            expected = server_order(other, folder, SORTS[prop], ascending)
            assert [m for m in everywhere if m in ids] == expected, (prop, ascending, folder)
        # The same order with any other filter over more than one folder, and in one.
        boxes = jmap.mailboxes()
        others = bridge_order(jmap, sort, {"inMailboxOtherThan": [boxes["INBOX"]["id"]]})
        assert others == [m for m in everywhere if m not in held["INBOX"]]
        archive = bridge_order(jmap, sort, {"inMailbox": boxes["Archive"]["id"]})
        assert archive == [m for m in everywhere if m in held["Archive"]]
        alone = [{"property": prop, "isAscending": ascending}]
        drafts = bridge_order(jmap, alone, {"inMailbox": boxes["Drafts"]["id"]})
        if upstream_sorts:
            # Alone, one folder's sort is the upstream's, ties in its sequence order.
            assert drafts == server_order(other, "Drafts", SORTS[prop], ascending)
        else:
            # From the keys, ties go newest first (the base order).
            newest_first = [{**alone[0]}, {"property": "receivedAt", "isAscending": False}]
            assert drafts == bridge_order(jmap, newest_first, {"inMailbox": boxes["Drafts"]["id"]})


@pytest.mark.parametrize("prop", sorted(SORTS))
def test_cross_folder_sorts_agree_with_the_upstreams_sort(
    jmap: JmapClient, other: IMAPClient, random_mail: dict[str, set[str]], prop: str
) -> None:
    check_sort(jmap, other, random_mail, prop)


def test_keys_come_from_the_headers_without_summaries(tmp_path: Path) -> None:
    """Without PREVIEW a sync stores no summaries: the first sort fetches the sorted
    header fields. Without SORT=DISPLAY one folder's from and to sorts use the keys too."""
    with (
        Dovecot({"u": "p"}, hide_capabilities=["PREVIEW", "SORT=DISPLAY"]) as dovecot,
        BridgeServer(dovecot.host, dovecot.port, tmp_path) as server,
    ):
        other = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
        other.login("u", "p")
        held = fill(other)
        jmap = server.client("u", "p")
        for prop in sorted(SORTS):
            check_sort(jmap, other, held, prop, upstream_sorts=prop in ("sentAt", "subject"))
        jmap.close()
        other.logout()


def test_ties_keep_a_fixed_order(jmap: JmapClient, random_mail: dict[str, set[str]]) -> None:
    sort = [{"property": "subject"}]
    first = bridge_order(jmap, sort)
    assert bridge_order(jmap, sort) == first
    # Without a second comparator, ties go newest first (the base order).
    with_received = bridge_order(jmap, [*sort, {"property": "receivedAt", "isAscending": False}])
    assert first == with_received


def test_emails_cached_before_the_keys_get_them(
    bridge: BridgeServer, jmap: JmapClient, other: IMAPClient, account: tuple[str, str]
) -> None:
    """A cache from before the sort keys holds summaries without them (migration 5 adds
    empty columns): the first cross-folder sort makes them from the summaries."""
    held = fill(other)
    jmap.call("Email/query", {})  # indexes every folder, with summaries and keys
    cache = bridge.bridge.users.get(account[0]).cache
    with cache.sql() as conn:
        conn.execute("UPDATE emails SET sort_from = NULL, sort_to = NULL, sort_subject = NULL")
    assert cache.sort_keys() == {}
    check_sort(jmap, other, held, "subject")
    assert len(cache.sort_keys()) == 90
