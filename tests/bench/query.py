"""B6: filtered Email/query against the raw IMAP search with the same criterion.

``python -m tests.bench.query [--sizes 10000,50000] [--reps N] [--index-only]``. For each
size: one Dovecot with a seeded INBOX (tests.bench.scenarios.seed_account), bridge as its
own process, indexed whole first (the time that takes is reported, with the cache's bytes
per message). Then, per filter, Email/query ``{inMailbox: INBOX, <condition>}`` newest
first, limit 50, calculateTotal, against ``UID SORT (REVERSE ARRIVAL) UTF-8 <criterion>``
on a logged-in imapclient connection with INBOX selected: from (one sender's last name),
subject (a topic word), to (the owner's name, on every message), hasKeyword $flagged,
receivedAt (a tenth of the dates), hasAttachment (the seeded multipart/mixed messages,
against ``HEADER Content-Type multipart/mixed``), size (``minSize`` 20,000 against
``LARGER``). Each answer is checked: the total against the server's count (for
receivedAt, against the seeded dates) and the page's Message-IDs against the server's
first 50. Medians, minimum and maximum of ``--reps`` rounds after one warm-up,
bridge and raw alternating. ``--index-only`` stops after the indexing (to compare the
indexing cost of another checkout). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.demo.sample import _bulk_pool
from tests.bench.harness import BridgeProcess, Jmap, check, progress, timed
from tests.bench.nocondstore import _spread
from tests.bench.scenarios import USERS, seed_account, user_cache, utc

USER = "large"
PAGE = 50
FILTERS = ("from", "subject", "to", "hasKeyword", "receivedAt", "hasAttachment", "size")


def _imap_date(when: datetime) -> str:
    return when.strftime("%d-%b-%Y")


def _filters(dates: list[datetime]) -> dict[str, tuple[dict[str, Any], list[str], int | None]]:
    """Name -> (JMAP condition, IMAP criteria, expected total or None: the server's)."""
    sender = _bulk_pool().senders[0][0]  # '"First Last" <first.last@domain>' or unquoted
    last_name = sender.split("<")[0].strip().strip('"').split()[-1]
    ordered = sorted(dates)
    low, high = ordered[len(ordered) * 4 // 10], ordered[len(ordered) // 2]
    # Whole days for the server (SINCE/BEFORE compare dates), the same days for bridge.
    start = datetime(low.year, low.month, low.day, tzinfo=UTC)
    end = datetime(high.year, high.month, high.day, tzinfo=UTC) + timedelta(days=1)
    in_range = sum(1 for d in dates if start <= d < end)
    return {
        "from": ({"from": last_name}, ["FROM", last_name], None),
        "subject": ({"subject": "roadmap"}, ["SUBJECT", "roadmap"], None),
        "to": ({"to": "alice"}, ["TO", "alice"], None),
        "hasKeyword": ({"hasKeyword": "$flagged"}, ["FLAGGED"], None),
        # The seeded messages with an attachment are the multipart/mixed ones.
        "hasAttachment": (
            {"hasAttachment": True},
            ["HEADER", "Content-Type", "multipart/mixed"],
            None,
        ),
        "size": ({"minSize": 20_000}, ["LARGER", "19999"], None),
        "receivedAt": (
            {"after": utc(start), "before": utc(end)},
            ["SINCE", _imap_date(start), "BEFORE", _imap_date(end)],
            in_range,
        ),
    }


def _query(jmap: Jmap, inbox: str, condition: dict[str, Any]) -> dict[str, Any]:
    args = {
        "accountId": jmap.account_id, "filter": {"inMailbox": inbox, **condition},
        "sort": [{"property": "receivedAt", "isAscending": False}], "limit": PAGE,
        "calculateTotal": True,
    }  # fmt: skip
    return jmap.request([["Email/query", args, "q"]])["q"][1]


def _message_ids(jmap: Jmap, ids: list[str]) -> list[str]:
    args = {"accountId": jmap.account_id, "ids": ids, "properties": ["messageId"]}
    listed = jmap.request([["Email/get", args, "g"]])["g"][1]["list"]
    found = {email["id"]: email["messageId"][0] for email in listed}
    return [found[email_id] for email_id in ids]


def _raw_message_ids(client: IMAPClient, uids: list[int]) -> list[str]:
    item = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
    fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    return [fetched[uid][item].decode().split("<", 1)[1].split(">", 1)[0] for uid in uids]


def bench_size(messages: int, reps: int, index_only: bool) -> dict[str, Any]:
    password = USERS[USER]
    with Dovecot({USER: password}) as dovecot:
        progress(f"B6: seeding {messages:,} messages")
        account = seed_account(dovecot, USER, messages)
        with BridgeProcess(dovecot.port) as bridge:
            jmap = Jmap(bridge.url, USER, password)
            started = time.perf_counter()
            jmap.session()
            boxes = jmap.request([["Mailbox/get", {"accountId": jmap.account_id}, "m"]])
            jmap.wait_indexed()
            index_seconds = time.perf_counter() - started
            inbox = next(b["id"] for b in boxes["m"][1]["list"] if b["role"] == "inbox")
            cache_bytes = user_cache(bridge, USER)
            result: dict[str, Any] = {
                "messages": messages,
                "index_s": round(index_seconds, 1),
                "cache_bytes_per_message": round(cache_bytes / messages),
            }
            progress(f"B6: indexed in {index_seconds:.1f} s, {cache_bytes / messages:.0f} B/msg")
            if index_only:
                return result
            client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
            client.login(USER, password)
            client.select_folder("INBOX", readonly=True)
            for name, (condition, criteria, expected) in _filters(account.inbox_dates).items():
                answer = _query(jmap, inbox, condition)
                raw = client.sort(["REVERSE ARRIVAL"], criteria, "UTF-8")
                if expected is None:
                    check(answer["total"] == len(raw),
                          f"{name}: bridge {answer['total']}, server {len(raw)}")  # fmt: skip
                    check(_message_ids(jmap, answer["ids"]) == _raw_message_ids(client, raw[:PAGE]),
                          f"{name}: the first page differs from the server's")  # fmt: skip
                else:
                    check(answer["total"] == expected, f"{name}: {answer['total']} != {expected}")
                bridge_times: list[float] = []
                raw_times: list[float] = []
                for rep in range(reps + 1):
                    seconds, _ = timed(lambda c=condition: _query(jmap, inbox, c))
                    raw_seconds, _ = timed(
                        lambda c=criteria: client.sort(["REVERSE ARRIVAL"], c, "UTF-8")
                    )
                    if rep:
                        bridge_times.append(seconds)
                        raw_times.append(raw_seconds)
                bridge_spread, raw_spread = _spread(bridge_times), _spread(raw_times)
                result[name] = {
                    "total": answer["total"],
                    "bridge": bridge_spread,
                    "raw_uid_sort": raw_spread,
                    "ratio": round(bridge_spread["median_ms"] / raw_spread["median_ms"], 2),
                }
                progress(f"B6 {messages:,} {name}: bridge {bridge_spread['median_ms']} ms, "
                         f"raw {raw_spread['median_ms']} ms")  # fmt: skip
            client.logout()
            jmap.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.query", description=__doc__)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--index-only", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    results = {str(size): bench_size(size, args.reps, args.index_only) for size in sizes}
    if len(sizes) == 2 and not args.index_only:
        small, large = (results[str(size)] for size in sizes)
        results["growth"] = {
            name: round(large[name]["bridge"]["median_ms"] / small[name]["bridge"]["median_ms"], 2)
            for name in FILTERS
        }
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
