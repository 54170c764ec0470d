"""B1 alone, many times, with bridge's CPU: ``python -m tests.bench.first_page [--reps N]
[--against CHECKOUT]``.

The cold first page of ``run.py`` (a fresh ``python -m bridge serve`` per run, started
and listening before the clock starts; GET session + POST [Mailbox/get] + POST the page,
against a new imapclient doing the same), repeated in rotating order so that a noisy
machine's drift falls on every side alike. A third imapclient side asks its folder list
with each folder's message and unread counts (LIST-STATUS), which the plain one skips and
a JMAP Mailbox/get cannot (RFC 8621 §2: totalEmails, unreadEmails): what the protocol
itself costs upstream, apart from what bridge adds. ``--against`` adds bridge from another
checkout (say, the main branch) as a third side. Besides the wall times it reports the CPU
bridge's process spent over the three requests, all threads (``/proc/<pid>/task/*/schedstat``),
which a busy machine inflates far less than wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import REPO, BridgeProcess, Jmap, progress, spread
from tests.bench.scenarios import (
    FULL,
    USERS,
    Account,
    check_first_page,
    check_raw_page,
    cold_first_page,
    imap_login,
    raw_first_page,
    seed_account,
)

Sample = dict[str, float]


def _cpu_ms(pid: int) -> float:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, IndexError, ValueError):  # a thread that ended
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    return total / 1e6


def bridge_side(dovecot: Dovecot, account: Account, checkout: Path) -> Callable[[], Sample]:
    def run() -> Sample:
        with BridgeProcess(dovecot.port, repo=checkout) as bridge:
            assert bridge.process is not None
            jmap = Jmap(bridge.url, account.user, account.password)
            try:
                cpu = _cpu_ms(bridge.process.pid)
                page, (start, session, mailboxes, end) = cold_first_page(jmap)
                cpu = _cpu_ms(bridge.process.pid) - cpu
                check_first_page(page, account)
                jmap.wait_indexed()  # the next run's Dovecot is not busy indexing for this one
            finally:
                jmap.close()
        return {
            "wall": end - start, "session": session - start, "mailboxes": mailboxes - session,
            "page": end - mailboxes, "cpu": cpu / 1000,
        }  # fmt: skip

    return run


def raw_side(dovecot: Dovecot, account: Account, counts: bool = False) -> Callable[[], Sample]:
    def run() -> Sample:
        start = time.perf_counter()
        client = imap_login(dovecot, account)
        page = raw_first_page(client, counts)
        wall = time.perf_counter() - start
        client.logout()
        check_raw_page(page, account)
        return {"wall": wall}

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.first_page", description=__doc__)
    parser.add_argument("--reps", type=int, default=9, help="measured runs per side (9)")
    parser.add_argument("--against", type=Path, help="another checkout's bridge, side by side")
    args = parser.parse_args(argv)
    with Dovecot(dict(USERS)) as dovecot:
        progress("seeding")
        account = seed_account(dovecot, "cold", FULL.inbox, FULL.folders, FULL.per_folder)
        sides = {
            "bridge": bridge_side(dovecot, account, REPO),
            "raw": raw_side(dovecot, account),
            "raw with counts": raw_side(dovecot, account, counts=True),
        }
        if args.against is not None:
            sides["against"] = bridge_side(dovecot, account, args.against.resolve())
        samples: dict[str, list[Sample]] = {name: [] for name in sides}
        names = list(sides)
        for rep in range(args.reps + 1):  # the first round warms Dovecot up
            progress(f"round {rep} of {args.reps}")
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                sample = sides[name]()
                if rep:
                    samples[name].append(sample)
    raw = [s["wall"] for s in samples["raw"]]
    counted = [s["wall"] for s in samples["raw with counts"]]
    print(f"B1, {args.reps} runs a side, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"raw IMAP: {spread(raw)}")
    print(
        f"raw IMAP with the folders' counts (LIST-STATUS, as Mailbox/get needs): {spread(counted)}"
    )
    for name in names:
        if name.startswith("raw"):
            continue
        runs = samples[name]
        wall = [s["wall"] for s in runs]
        ratios = sorted(s["wall"] / r for s, r in zip(runs, raw, strict=True))
        where = args.against if name == "against" else REPO
        times_raw = statistics.median(wall) / statistics.median(raw)
        times_counted = statistics.median(wall) / statistics.median(counted)
        print(
            f"{name} ({where}): {spread(wall)}, {times_raw:.2f}x raw, "
            f"{times_counted:.2f}x raw with counts "
            f"(one run's ratio {ratios[0]:.2f}-{ratios[-1]:.2f}); GET session "
            f"{spread([s['session'] for s in runs])}, POST [Mailbox/get] "
            f"{spread([s['mailboxes'] for s in runs])}, the page "
            f"{spread([s['page'] for s in runs])}; "
            f"bridge's CPU {spread([s['cpu'] for s in runs])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
