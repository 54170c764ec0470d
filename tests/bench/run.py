"""Run every benchmark and print a markdown table: ``python -m tests.bench.run [--quick]``.

Each number is the median of several repetitions, bridge and raw IMAP (imapclient doing
the same work) measured side by side in one run, in alternating order: on a shared
machine absolute times drift, ratios much less. Needs Dovecot (``dovecot-imapd``); starts
its own on a free loopback port and removes it at the end. Progress goes to stderr, the
table to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

from tests.bench.harness import REPO, BenchError, ms, progress, ratio
from tests.bench.scenarios import FULL, PAGE, QUICK, Results, run_all


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "missed"


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def _per_message(total_bytes: int, messages: int) -> str:
    return f"{total_bytes / messages:,.0f} B ({total_bytes / 2**20:,.1f} MiB / {messages:,})"


def _environment() -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dovecot = subprocess.run(["dovecot", "--version"], capture_output=True, text=True)
    return (
        f"commit {commit or '?'} (plus any uncommitted changes), {time.strftime('%Y-%m-%d')}, "
        f"Python {platform.python_version()}, Dovecot {dovecot.stdout.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )


def table(results: Results, quick: bool) -> str:
    s, f, med = results.sizes, results.facts, results.median
    big, small = f"{s.delta_large:,}", f"{s.delta_small:,}"
    b1, raw1, counted1 = med("b1.bridge"), med("b1.raw"), med("b1.raw_counts")
    b2, raw_new, raw_in = med("b2.bridge"), med("b2.raw_new"), med("b2.raw_logged_in")
    d_small, d_big = med("b3.small.bridge"), med("b3.large.bridge")
    r_small, r_big = med("b3.small.raw"), med("b3.large.raw")
    sd_small, sd_big = med("b3.small_sdbox.bridge"), med("b3.large_sdbox.bridge")
    sr_small, sr_big = med("b3.small_sdbox.raw"), med("b3.large_sdbox.raw")
    mailbox = f"{s.inbox:,}-message INBOX + {s.folders} folders x {s.per_folder}"
    kb_b1 = f["b1_cache_bytes"] / f["b1_messages"]
    kb_big = f["b3_large_cache_bytes"] / f["b3_large_messages"]
    kb_full = f["b3_small_cache_full_bytes"] / f["b3_small_messages"]
    worst_kb = max(kb_b1, kb_big, kb_full)
    indexed_b1 = indexed_b3 = ""
    if "b1.bridge.indexed" in results.series:
        indexed_b1 = (
            f"; whole account indexed (in the background) {ms(med('b1.bridge.indexed'))} "
            "after the first request"
        )
    if "b3_large_indexed_s" in f:
        indexed_b3 = (
            f" (whole INBOX indexed after {f['b3_small_indexed_s']:.2f} s and "
            f"{f['b3_large_indexed_s']:.2f} s)"
        )
    lines = [
        f"Benchmarks{' (--quick: small mailboxes, not the real numbers)' if quick else ''}: "
        f"median of {s.reps} runs each after one warm-up, bridge and raw IMAP side by side.",
        f"{_environment()}.",
        "",
        "| Scenario | bridge | raw IMAP | bridge / raw | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| B1 cold first page: {mailbox}, empty cache; raw: new connection "
        f"| {ms(b1)} | {ms(raw1)} | {ratio(b1, raw1)} "
        f"| <= 1.5x: {_verdict(b1 / raw1, 1.5)} |",
        f"| B1; raw: new connection, folder list with counts (LIST-STATUS, as Mailbox/get) "
        f"| {ms(b1)} | {ms(counted1)} | {ratio(b1, counted1)} | (for reference) |",
        f"| B2 the same page warm; raw: new connection | {ms(b2)} | {ms(raw_new)} "
        f"| {ratio(b2, raw_new)} | <= 0.3x: {_verdict(b2 / raw_new, 0.3)} |",
        f"| B2 the same page warm; raw: logged-in connection | {ms(b2)} | {ms(raw_in)} "
        f"| {ratio(b2, raw_in)} | (for reference) |",
        f"| B3 delta (10 flag changes, 5 new), {small}-message INBOX "
        f"| {ms(d_small)} | {ms(r_small)} | {ratio(d_small, r_small)} | |",
        f"| B3 delta (10 flag changes, 5 new), {big}-message INBOX "
        f"| {ms(d_big)} | {ms(r_big)} | {ratio(d_big, r_big)} | |",
        f"| B3 growth, {big} / {small} messages | {ratio(d_big, d_small)} "
        f"| {ratio(r_big, r_small)} | | bridge <= 1.2x: {_verdict(d_big / d_small, 1.2)} |",
        f"| B3 delta, {small}-message INBOX, Dovecot sdbox "
        f"| {ms(sd_small)} | {ms(sr_small)} | {ratio(sd_small, sr_small)} | |",
        f"| B3 delta, {big}-message INBOX, Dovecot sdbox "
        f"| {ms(sd_big)} | {ms(sr_big)} | {ratio(sd_big, sr_big)} | |",
        f"| B3 growth on sdbox, {big} / {small} messages | {ratio(sd_big, sd_small)} "
        f"| {ratio(sr_big, sr_small)} | | bridge <= 1.2x: {_verdict(sd_big / sd_small, 1.2)} |",
        "",
        "| bridge's resources | value |",
        "| --- | ---: |",
        f"| RSS of an idle bridge process right after start | {_mib(f['idle_rss_kib'])} |",
        f"| Peak RSS (VmHWM of the bridge process), B1 ({f['b1_messages']:,} messages, cold) "
        f"| {_mib(f['b1_peak_kib'])} |",
        f"| Peak RSS, B3 ({f['b3_small_messages']:,} messages, incl. all summaries) "
        f"| {_mib(f['b3_small_peak_kib'])} |",
        f"| Peak RSS, B3 ({f['b3_large_messages']:,} messages) | {_mib(f['b3_large_peak_kib'])} |",
        f"| Cache per message, B1 after the first page ({PAGE} summaries) "
        f"| {_per_message(f['b1_cache_bytes'], f['b1_messages'])} |",
        f"| Cache per message, B3 large | "
        f"{_per_message(f['b3_large_cache_bytes'], f['b3_large_messages'])} |",
        f"| Cache per message, B3 small after a list view of every message "
        f"| {_per_message(f['b3_small_cache_full_bytes'], f['b3_small_messages'])} |",
        f"| Cache target < 1 KB/message | {_verdict(worst_kb, 1024)} (worst {worst_kb:,.0f} B) |",
        "",
        "Where B1's time goes (bridge, medians): "
        f"GET session {ms(med('b1.bridge.session'))}, "
        f"first POST [Mailbox/get] (the first sync) {ms(med('b1.bridge.mailboxes'))}, "
        f"POST [Mailbox/get, Email/query, Email/get] {ms(med('b1.bridge.page'))}"
        f"{indexed_b1}. "
        f"First POST [Mailbox/get] on the B3 INBOXes: "
        f"{f['b3_small_first_sync_s']:.2f} s for {small}, "
        f"{f['b3_large_first_sync_s']:.2f} s for {big} messages{indexed_b3}; "
        f"list properties of all {f['b3_small_messages']:,} messages of the small INBOX "
        f"(1,000 per request, summaries not cached yet): {f['summaries_all_s']:.2f} s.",
        "",
        "bridge runs as `python -m bridge serve` in its own process (memory is its own); B1 "
        "is the first request of a fresh process, B2 and B3 run after a small other account "
        "was served. The JMAP side is a "
        "keep-alive httpx client; B1 starts a new one (new TCP connection). "
        "B1 bridge = GET session + POST [Mailbox/get] (a client must learn the INBOX id "
        "first) + POST [Mailbox/get, Email/query, Email/get]; raw = connect, LOGIN, LIST, "
        "SELECT INBOX (read-only), UID SORT (REVERSE ARRIVAL), UID FETCH of 50 (ENVELOPE "
        "FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE PREVIEW). B2 bridge = the last POST "
        "again. B3 bridge = POST [Email/changes, Email/get created, Email/get updated]; raw "
        "= on a logged-in connection, SELECT + UID SEARCH MODSEQ (CONDSTORE) + UID FETCH "
        "of the changed messages; each side is timed only right after a change of its own, "
        "as the first session to read it (the other side reads it after, untimed). "
        "Cache = cache.sqlite3 + -wal after a checkpoint. "
        "B1, B2 and the first B3 rows run on Dovecot's Maildir (the seeding writes it "
        "directly); the sdbox rows on a second Dovecot whose mail was brought in with "
        "`doveadm import`. On Maildir a flag change by another client renames a file and "
        "the first session to read that folder after it rescans the directory, so the "
        "server's own delta cost grows with the folder; sdbox keeps flags in its index.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small mailboxes: a smoke check")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        results = run_all(QUICK if args.quick else FULL)
    except BenchError as exc:
        print(f"BENCHMARK FAILED a correctness check: {exc}", file=sys.stderr)
        return 1
    progress(f"done in {time.perf_counter() - started:.0f} s")
    print(table(results, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
