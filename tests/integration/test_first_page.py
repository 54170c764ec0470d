"""A folder too big to index during the request: its first page comes from the server's
SORT, its counts from STATUS, and the index fills in behind, newest first."""

from __future__ import annotations

import time

from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.demo.sample import bulk_messages
from bridge.demo.seed import write_maildir
from bridge.mail.sync import FOREGROUND_LIMIT
from tests.integration.server import BridgeServer, JmapClient

COUNT = FOREGROUND_LIMIT + 300
NEWEST = [{"property": "receivedAt", "isAscending": False}]


def wait_indexed(jmap: JmapClient) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        status = jmap.http.get("/jmap/status").json()
        if not status["indexing"] and all(
            f["indexed"] == f["total"] for f in status["folders"].values()
        ):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_first_page_before_the_index(
    upstream: Dovecot,
    account: tuple[str, str],
    bridge: BridgeServer,
    jmap: JmapClient,
    other: IMAPClient,
) -> None:
    write_maildir(upstream.mail_dir(account[0]), bulk_messages(COUNT, seed=7))
    other.select_folder("INBOX", readonly=True)
    newest_uids = other.sort(["REVERSE", "ARRIVAL"])[:20]
    newest_dates = {d[b"INTERNALDATE"] for d in other.fetch(newest_uids, ["INTERNALDATE"]).values()}
    state = jmap.call("Email/get", {"ids": []})["state"]
    inbox = jmap.mailboxes()["INBOX"]
    assert inbox["totalEmails"] == COUNT
    page = jmap.call("Email/query", {"filter": {"inMailbox": inbox["id"]}, "sort": NEWEST,
                                     "limit": 20, "calculateTotal": True})  # fmt: skip
    assert page["total"] == COUNT and len(page["ids"]) == 20
    emails = jmap.call("Email/get", {"ids": page["ids"], "properties": ["receivedAt", "subject"]})
    received = [e["receivedAt"] for e in emails["list"]]
    assert received == sorted(received, reverse=True)
    assert len({d.astimezone().replace(tzinfo=None) for d in newest_dates}) == len(newest_dates)

    status = wait_indexed(jmap)
    assert status["folders"]["INBOX"] == {"indexed": COUNT, "total": COUNT}
    # The first page was answered without the header index's words of its Emails: the
    # indexer has filled them in since, so a from: query needs no upstream SEARCH for them.
    with bridge.bridge.users.get(account[0]).cache.sql() as conn:
        unknown = conn.execute("SELECT COUNT(*) FROM header_text WHERE inexact IS NULL")
        assert unknown.fetchone()[0] == 0
    # The cache now gives the same first page, and the exact counts.
    again = jmap.call("Email/query", {"filter": {"inMailbox": inbox["id"]}, "sort": NEWEST,
                                      "limit": 20, "calculateTotal": True})  # fmt: skip
    assert again["ids"] == page["ids"] and again["total"] == COUNT
    inbox = jmap.mailboxes()["INBOX"]
    assert inbox["totalEmails"] == COUNT and inbox["totalThreads"] < COUNT
    # Everything the index found since the first state is reported, each Email once.
    created: list[str] = []
    while True:
        changes = jmap.call("Email/changes", {"sinceState": state, "maxChanges": 500})
        created += changes["created"]
        state = changes["newState"]
        if not changes["hasMoreChanges"]:
            break
    assert len(created) == len(set(created)) == COUNT


def test_a_query_the_cache_must_answer_waits_for_the_index(
    upstream: Dovecot, account: tuple[str, str], jmap: JmapClient
) -> None:
    write_maildir(upstream.mail_dir(account[0]), bulk_messages(COUNT, seed=8))
    result = jmap.call("Email/query", {"filter": {"hasKeyword": "$seen"}, "calculateTotal": True})
    unread = jmap.call("Email/query", {"filter": {"notKeyword": "$seen"}, "calculateTotal": True})
    assert result["total"] + unread["total"] == COUNT
