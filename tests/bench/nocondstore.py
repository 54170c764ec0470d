"""B5: bridge on a server without CONDSTORE/QRESYNC, against the same server with them.

``python -m tests.bench.nocondstore [--messages N] [--reps N] [--idle-seconds S]``. One
Dovecot advertising everything and one hiding CONDSTORE and QRESYNC (the fixture
``dovecot_nocondstore`` does the same), each with a seeded INBOX and 20 folders of 50
messages, each with bridge as its own process, in one run. Per server:

- Email/changes after another IMAP client changed one message's flags (median and spread
  of ``--reps`` requests after one warm-up; each answer is checked: one Email updated, its
  keywords what the client set);
- Email/changes with nothing changed;
- Email/changes after another client appended a message to another folder;
- bridge's CPU share while one EventSource stream listens and nothing changes.

Prints one JSON object per server.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import threading
import time
from typing import Any

from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import BridgeProcess, Jmap, check, progress, timed
from tests.bench.push import _cpu_seconds, _reader
from tests.bench.scenarios import seed_account

USER, PASSWORD = "small", "small-pw"  # seed_account's users and passwords
SERVERS = {"condstore": (), "nocondstore": ("CONDSTORE", "QRESYNC")}
FOLDERS, PER_FOLDER = 20, 50


def _spread(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 1),
        "min_ms": round(min(samples) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
        "n": len(samples),
    }


def _changes(jmap: Jmap, since: str) -> dict[str, Any]:
    calls = [["Email/changes", {"accountId": jmap.account_id, "sinceState": since}, "c"]]
    return jmap.request(calls)["c"][1]


def _state(jmap: Jmap) -> str:
    args = {"accountId": jmap.account_id, "ids": []}
    return str(jmap.request([["Email/get", args, "s"]])["s"][1]["state"])


def _keywords(jmap: Jmap, email_id: str) -> dict[str, bool]:
    args = {"accountId": jmap.account_id, "ids": [email_id], "properties": ["keywords"]}
    return jmap.request([["Email/get", args, "g"]])["g"][1]["list"][0]["keywords"]


def bench_server(hide: tuple[str, ...], messages: int, reps: int, idle: float) -> dict[str, Any]:
    with Dovecot({USER: PASSWORD}, hide_capabilities=hide) as dovecot:
        # And 20 folders of 50 as in B1: the idle watcher polls their STATUS.
        seed_account(dovecot, USER, messages, FOLDERS, PER_FOLDER)
        with BridgeProcess(dovecot.port) as bridge:
            jmap = Jmap(bridge.url, USER, PASSWORD)
            session = jmap.session()
            jmap.request([["Mailbox/get", {"accountId": jmap.account_id, "ids": []}, "m"]])
            jmap.wait_indexed()
            state = _state(jmap)
            other = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
            other.login(USER, PASSWORD)
            other.select_folder("INBOX")
            uids = other.search("ALL")
            check(len(uids) == messages, f"INBOX holds {len(uids)} messages")

            flag_change: list[float] = []
            for rep in range(reps + 1):
                uid = uids[(rep * 997) % len(uids)]
                other.add_flags([uid], [b"\\Flagged"])
                seconds, found = timed(lambda: _changes(jmap, state))  # noqa: B023
                check(len(found["updated"]) == 1 and not found["created"]
                      and not found["destroyed"], f"changes: {found}")  # fmt: skip
                check(_keywords(jmap, found["updated"][0]).get("$flagged") is True,
                      "the flag did not arrive")  # fmt: skip
                state = found["newState"]
                if rep:
                    flag_change.append(seconds)

            unchanged: list[float] = []
            for rep in range(reps + 1):
                seconds, found = timed(lambda: _changes(jmap, state))
                check(found["updated"] == found["created"] == found["destroyed"] == [],
                      f"changes with nothing changed: {found}")  # fmt: skip
                if rep:
                    unchanged.append(seconds)

            # New mail in another folder: it is opened on the connection that keeps INBOX
            # open, which then has INBOX to scan again (without CONDSTORE).
            elsewhere: list[float] = []
            for rep in range(reps + 1):
                other.append("Folder00", b"From: a@example.com\r\nSubject: e%d\r\n\r\nb\r\n" % rep)
                seconds, found = timed(lambda: _changes(jmap, state))  # noqa: B023
                check(len(found["created"]) == 1, f"changes after new mail elsewhere: {found}")
                state = found["newState"]
                if rep:
                    elsewhere.append(seconds)

            assert bridge.process is not None
            pid = bridge.process.pid
            stop = threading.Event()
            url = session["eventSourceUrl"].format(types="*", closeafter="no", ping="0")
            threading.Thread(target=_reader, args=(url, (USER, PASSWORD), queue.Queue(), stop),
                             daemon=True).start()  # fmt: skip
            time.sleep(3)  # the watcher has started and synced once
            cpu_start, wall_start = _cpu_seconds(pid), time.monotonic()
            time.sleep(idle)
            cpu_share = (_cpu_seconds(pid) - cpu_start) / (time.monotonic() - wall_start)
            stop.set()
            other.logout()
            jmap.close()
    return {
        "messages": messages,
        "other_folders": f"{FOLDERS} x {PER_FOLDER}",
        "changes_after_one_flag_change": _spread(flag_change),
        "changes_nothing_changed": _spread(unchanged),
        "changes_after_new_mail_in_another_folder": _spread(elsewhere),
        "idle_stream_cpu_share": round(cpu_share, 4),
        "idle_seconds": idle,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    results = {}
    for name, hide in SERVERS.items():
        progress(f"B5: {name}, {args.messages:,}-message INBOX")
        results[name] = bench_server(hide, args.messages, args.reps, args.idle_seconds)
    with_cs = results["condstore"]["changes_after_one_flag_change"]["median_ms"]
    without = results["nocondstore"]["changes_after_one_flag_change"]["median_ms"]
    results["ratio_nocondstore_to_condstore"] = round(without / with_cs, 2)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
