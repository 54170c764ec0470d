"""Writes on a big account: ``python -m tests.bench.writes [--size N] [--reps N]
[--store sqlite|postgresql] [--against CHECKOUT] [--while-indexing]
[--maildir-very-dirty-syncs]``.

Not a ratio to raw IMAP (a raw client's CREATE or STORE is one command, with no cache to
keep): the time of each call, so that a cost hidden behind one (a recount of every folder,
a Maildir scan of INBOX) shows. One Dovecot with an INBOX of ``--size`` messages (50,000)
per side; bridge as its own process, the account indexed whole first. Per round: Mailbox/set
create, rename, destroy of an empty folder; Email/set ``$flagged`` on a new message each
time (repeated: INBOX stays open); then, in turns, ``$seen``, ``$flagged``, a move to
Archive and one back (each move opens Archive, so the next write opens INBOX anew), and a
destroy. ``--against`` times another checkout's bridge the same way, on an account of its
own. ``--while-indexing`` starts the writes right after the first request, while the
background indexer works through INBOX (about 15 s at 50,000 messages), the rounds of
moves first. ``--maildir-very-dirty-syncs`` sets
Dovecot's option of that name (a SELECT without the scan of ``cur/``). Prints the medians
(lowest-highest) of ``--reps`` rounds (9).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import REPO, BridgeProcess, Jmap, check, progress, spread
from tests.bench.scenarios import USERS, seed_account
from tests.support.postgres import PostgresCluster

CALLS = ("create", "rename", "destroy empty", "flag, repeated", "seen", "flag", "move", "back",
         "destroy")  # fmt: skip


@contextlib.contextmanager
def bridge_of(dovecot: Dovecot, store: str, checkout: Path, name: str) -> Iterator[BridgeProcess]:
    with contextlib.ExitStack() as stack:
        flags: list[str] = []
        if store == "postgresql":
            cluster = stack.enter_context(PostgresCluster())
            flags = ["--store", cluster.create_database(name)]
        yield stack.enter_context(BridgeProcess(dovecot.port, flags=flags, repo=checkout))


def time_writes(jmap: Jmap, reps: int, *, moves_first: bool = False) -> dict[str, list[float]]:
    aid = jmap.account_id or ""
    boxes = jmap.request([["Mailbox/get", {"accountId": aid, "ids": None}, "m"]])["m"][1]
    role = {box["role"]: box["id"] for box in boxes["list"] if box["role"]}
    inbox, archive = role["inbox"], role["archive"]
    query = {"filter": {"inMailbox": inbox}, "sort": [{"property": "receivedAt"}],
             "limit": 3 * reps + 1}  # fmt: skip
    ids = jmap.request([["Email/query", {"accountId": aid, **query}, "q"]])["q"][1]["ids"]
    times: dict[str, list[float]] = {name: [] for name in CALLS}

    def call(name: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        answer = jmap.request([[method, {"accountId": aid, **args}, "c"]])["c"]
        times[name].append(time.perf_counter() - start)
        check(answer[0] == method and not answer[1].get("notUpdated"), f"{name}: {answer}")
        return answer[1]

    def folders_and_flags() -> None:
        for rep in range(reps):
            made = call("create", "Mailbox/set", {"create": {"n": {"name": f"Bench{rep}"}}})
            folder = made["created"]["n"]["id"]
            call("rename", "Mailbox/set", {"update": {folder: {"name": f"Renamed{rep}"}}})
            call("destroy empty", "Mailbox/set", {"destroy": [folder]})
            flagged = {ids[rep]: {"keywords/$flagged": True}}
            call("flag, repeated", "Email/set", {"update": flagged})

    def moves() -> None:
        for rep in range(reps):
            email = ids[reps + rep]
            call("seen", "Email/set", {"update": {email: {"keywords/$seen": True}}})
            call("flag", "Email/set", {"update": {email: {"keywords/$flagged": True}}})
            call("move", "Email/set", {"update": {email: {"mailboxIds": {archive: True}}}})
            call("back", "Email/set", {"update": {email: {"mailboxIds": {inbox: True}}}})
            call("destroy", "Email/set", {"destroy": [ids[2 * reps + rep]]})

    for part in (moves, folders_and_flags) if moves_first else (folders_and_flags, moves):
        part()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.writes", description=__doc__)
    parser.add_argument("--size", type=int, default=50_000, help="INBOX messages (50,000)")
    parser.add_argument("--reps", type=int, default=9, help="rounds (9)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--against", type=Path, help="another checkout's bridge as well")
    parser.add_argument("--while-indexing", action="store_true",
                        help="write while INBOX is still being indexed")  # fmt: skip
    parser.add_argument("--maildir-very-dirty-syncs", action="store_true",
                        help="Dovecot's maildir_very_dirty_syncs = yes")  # fmt: skip
    args = parser.parse_args(argv)
    sides = {"bridge": (REPO, "large")}
    if args.against is not None:
        sides["against"] = (args.against.resolve(), "small")
    results: dict[str, dict[str, list[float]]] = {}
    extra = "maildir_very_dirty_syncs = yes" if args.maildir_very_dirty_syncs else ""
    with Dovecot(dict(USERS), extra_config=extra) as dovecot:
        for side, (checkout, user) in sides.items():
            progress(f"{side}: seeding {args.size:,} messages")
            seed_account(dovecot, user, args.size)
            with bridge_of(dovecot, args.store, checkout, f"writes_{user}") as bridge:
                jmap = Jmap(bridge.url, user, USERS[user])
                jmap.session()
                # The first request lists the folders and starts the indexer.
                jmap.request([["Mailbox/get", {"accountId": jmap.account_id, "ids": []}, "m"]])
                if not args.while_indexing:
                    jmap.wait_indexed()
                progress(f"{side}: {args.reps} rounds")
                results[side] = time_writes(jmap, args.reps, moves_first=args.while_indexing)
                jmap.close()
    print(f"Writes on a {args.size:,}-message INBOX, {args.store} store, medians of {args.reps}")
    print("| Call | " + " | ".join(f"{side} ({sides[side][0]})" for side in results) + " |")
    print("| --- |" + " ---: |" * len(results))
    for name in CALLS:
        print(f"| {name} | " + " | ".join(spread(results[side][name]) for side in results) + " |")
    if args.while_indexing:
        print("(while indexing: the moves' rounds ran first, from the first request on)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
