"""B6: filtered Email/query against the raw IMAP search with the same criterion.

``python -m tests.bench.query [--sizes 10000,50000] [--reps N] [--index-only]
[--stores sqlite,postgresql]``. For each size: one Dovecot with a seeded INBOX
(tests.bench.scenarios.seed_account), bridge as its own process, indexed whole first (the
time that takes is reported, with the cache's bytes per message). ``--stores`` runs a
bridge on each store named (``postgresql``: a database in a throwaway cluster,
tests/support/postgres.py) in front of the same Dovecot, each indexed in turn, and times
them alternating with the raw search; the first store's figures keep the keys of a
single-store run (``bridge``, ``ratio``), the others' carry the store's name.

Then, per filter, Email/query ``{inMailbox: INBOX, <condition>}`` newest
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
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any

from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.demo.sample import _bulk_pool
from tests.bench.harness import BridgeProcess, Jmap, check, progress, timed
from tests.bench.nocondstore import _spread
from tests.bench.scenarios import USERS, seed_account, user_cache, utc
from tests.support.postgres import PostgresCluster

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


def _postgres_bytes(database: str, user: str) -> int:
    """The user's tables, indexes and TOAST in the store's database."""
    import psycopg

    schema = "u_" + sha256(user.encode()).hexdigest()[:32]
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchone()
    return int(row[0])


@contextlib.contextmanager
def _bridges(
    stores: list[str], imap_port: int, cluster: PostgresCluster | None
) -> Iterator[dict[str, tuple[BridgeProcess, str | None]]]:
    """A bridge process per store, with its database (None: SQLite)."""
    with contextlib.ExitStack() as stack:
        bridges: dict[str, tuple[BridgeProcess, str | None]] = {}
        for store in stores:
            database = None
            if store == "postgresql":
                assert cluster is not None
                database = cluster.create_database(f"bench_query_{secrets.token_hex(4)}")
            flags = ["--store", database] if database else []
            bridges[store] = (stack.enter_context(BridgeProcess(imap_port, flags=flags)), database)
        yield bridges


def _index(
    bridge: BridgeProcess, database: str | None, messages: int
) -> tuple[Jmap, str, dict[str, Any]]:
    """The bridge's session, INBOX id, and its indexing figures."""
    jmap = Jmap(bridge.url, USER, USERS[USER])
    started = time.perf_counter()
    jmap.session()
    boxes = jmap.request([["Mailbox/get", {"accountId": jmap.account_id}, "m"]])
    jmap.wait_indexed()
    index_seconds = time.perf_counter() - started
    inbox = next(b["id"] for b in boxes["m"][1]["list"] if b["role"] == "inbox")
    stored = _postgres_bytes(database, USER) if database else user_cache(bridge, USER)
    progress(f"B6: indexed in {index_seconds:.1f} s, {stored / messages:.0f} B/msg")
    return (
        jmap,
        inbox,
        {
            "index_s": round(index_seconds, 1),
            "cache_bytes_per_message": round(stored / messages),
        },
    )


def bench_size(
    messages: int, reps: int, index_only: bool, stores: list[str], cluster: PostgresCluster | None
) -> dict[str, Any]:
    password = USERS[USER]
    first = stores[0]

    def key(name: str, store: str) -> str:
        return name if store == first else f"{name}_{store}"

    with Dovecot({USER: password}) as dovecot:
        progress(f"B6: seeding {messages:,} messages")
        account = seed_account(dovecot, USER, messages)
        with _bridges(stores, dovecot.port, cluster) as bridges:
            result: dict[str, Any] = {"messages": messages}
            sessions: dict[str, tuple[Jmap, str]] = {}
            for store, (bridge, database) in bridges.items():
                jmap, inbox, figures = _index(bridge, database, messages)
                sessions[store] = (jmap, inbox)
                result.update({key(name, store): value for name, value in figures.items()})
            if index_only:
                return result
            client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
            client.login(USER, password)
            client.select_folder("INBOX", readonly=True)
            for name, (condition, criteria, expected) in _filters(account.inbox_dates).items():
                raw = client.sort(["REVERSE ARRIVAL"], criteria, "UTF-8")
                for store, (jmap, inbox) in sessions.items():
                    answer = _query(jmap, inbox, condition)
                    total = answer["total"]
                    if expected is None:
                        check(total == len(raw), f"{name} ({store}): {total}, server {len(raw)}")
                        page = _message_ids(jmap, answer["ids"])
                        differs = f"{name} ({store}): the first page differs from the server's"
                        check(page == _raw_message_ids(client, raw[:PAGE]), differs)
                    else:
                        check(total == expected, f"{name} ({store}): {total} != {expected}")
                bridge_times: dict[str, list[float]] = {store: [] for store in stores}
                raw_times: list[float] = []
                for rep in range(reps + 1):
                    # The stores' order turns each round, so none always runs first.
                    for store in stores[rep % len(stores) :] + stores[: rep % len(stores)]:
                        jmap, inbox = sessions[store]
                        seconds, _ = timed(lambda j=jmap, i=inbox, c=condition: _query(j, i, c))
                        if rep:
                            bridge_times[store].append(seconds)
                    raw_seconds, _ = timed(
                        lambda c=criteria: client.sort(["REVERSE ARRIVAL"], c, "UTF-8")
                    )
                    if rep:
                        raw_times.append(raw_seconds)
                raw_spread = _spread(raw_times)
                figures: dict[str, Any] = {"total": answer["total"], "raw_uid_sort": raw_spread}
                for store in stores:
                    spread = _spread(bridge_times[store])
                    figures[key("bridge", store)] = spread
                    figures[key("ratio", store)] = round(
                        spread["median_ms"] / raw_spread["median_ms"], 2
                    )
                    progress(f"B6 {messages:,} {name} ({store}): bridge {spread['median_ms']} "
                             f"ms, raw {raw_spread['median_ms']} ms")  # fmt: skip
                result[name] = figures
            client.logout()
            for jmap, _ in sessions.values():
                jmap.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.query", description=__doc__)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--index-only", action="store_true")
    parser.add_argument("--stores", default="sqlite", help="sqlite, postgresql or both")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    stores = args.stores.split(",")
    if not stores or set(stores) - {"sqlite", "postgresql"} or len(set(stores)) < len(stores):
        parser.error("--stores: sqlite and/or postgresql, each once")
    with contextlib.ExitStack() as stack:
        cluster = None
        if "postgresql" in stores:
            cluster = stack.enter_context(PostgresCluster())
        results = {
            str(size): bench_size(size, args.reps, args.index_only, stores, cluster)
            for size in sizes
        }
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
