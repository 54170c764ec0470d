"""The benchmark scenarios: bridge and raw IMAP doing the same work, side by side.

B1  cold first page: empty cache, a list view of INBOX from nothing.
B2  the same first page again, warm, nothing changed upstream.
B3  delta sync after another client flagged 10 messages and appended 5, on a small and a
    large INBOX: bridge's cost should not grow with the mailbox.
Plus bridge's peak memory (VmHWM of its process) and its cache size per message.

Every scenario checks its answers and raises BenchError on a wrong one: a fast wrong answer
is not a result.
"""

from __future__ import annotations

import itertools
import random
import resource
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any

from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.demo.sample import SampleMessage, bulk_messages
from bridge.demo.seed import seed_demo, write_maildir
from tests.bench.harness import (
    LIST_PROPERTIES,
    RAW_LIST_ITEMS,
    BridgeProcess,
    Jmap,
    Series,
    cache_bytes,
    check,
    progress,
    timed,
)

PAGE = 50
FLAGGED_PER_REP = 10
APPENDED_PER_REP = 5


@dataclass(frozen=True)
class Sizes:
    inbox: int  # B1/B2 INBOX
    folders: int  # B1/B2 other folders ...
    per_folder: int  # ... with this many messages each
    delta_small: int  # B3 INBOX sizes
    delta_large: int
    reps: int  # measured repetitions per scenario (after one discarded warm-up)


FULL = Sizes(inbox=10_000, folders=20, per_folder=50, delta_small=1_000, delta_large=50_000,
             reps=7)  # fmt: skip
QUICK = Sizes(inbox=1_000, folders=20, per_folder=10, delta_small=200, delta_large=2_000, reps=3)

USERS = {"cold": "cold-pw", "small": "small-pw", "large": "large-pw", "warm": "warm-pw"}


def utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Account:
    """What the benchmark knows about an account it seeded."""

    user: str
    inbox_dates: list[datetime]  # internal dates of INBOX, oldest first
    total: int  # messages in all folders

    @property
    def password(self) -> str:
        return USERS[self.user]

    def newest(self, count: int) -> list[str]:
        return [utc(d) for d in sorted(self.inbox_dates, reverse=True)[:count]]


def _recording(messages: Iterator[SampleMessage], dates: list[datetime]) -> Iterator[SampleMessage]:
    for message in messages:
        if message.folder == "INBOX":
            dates.append(message.internal_date)
        yield message


def seed_account(dovecot: Dovecot, user: str, inbox: int, folders: int = 0,
                 per_folder: int = 0) -> Account:  # fmt: skip
    """Write the account's Maildir directly; on a Dovecot with another mail format, write
    it beside and let ``doveadm import`` bring it in (far faster than APPENDs)."""
    dates: list[datetime] = []
    streams = [bulk_messages(inbox, folder="INBOX", seed=1)]
    streams += [
        bulk_messages(per_folder, folder=f"Folder{n:02d}", seed=100 + n) for n in range(folders)
    ]
    maildir = dovecot.mail_format == "maildir"
    target = dovecot.mail_dir(user) if maildir else dovecot.mail_dir(user).with_name(f"{user}.in")
    written = write_maildir(target, _recording(itertools.chain(*streams), dates))
    check(written == inbox + folders * per_folder, f"seeded {written} messages for {user}")
    if not maildir:
        subprocess.run(
            ["doveadm", "-c", str(dovecot.config_path), "import", "-u", user,
             f"maildir:{target}", "", "all"],
            check=True, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(target)
    return Account(user, dates, written)


@dataclass
class Results:
    """Everything run.py prints."""

    sizes: Sizes
    series: dict[str, Series] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def sample(self, key: str, seconds: float) -> None:
        self.series.setdefault(key, Series()).add(seconds)

    def median(self, key: str) -> float:
        return self.series[key].median


def user_cache(bridge: BridgeProcess, user: str) -> int:
    digest = sha256(user.encode()).hexdigest()[:32]
    path = bridge.data_dir / "users" / digest / "cache.sqlite3"
    check(path.exists(), f"no cache file at {path}")
    return cache_bytes(path)


# --------------------------------------------------------------------------------------
# JMAP requests
# --------------------------------------------------------------------------------------


def inbox_of(jmap: Jmap) -> str:
    """POST Mailbox/get, as a client does first; the id of the mailbox with role inbox."""
    result = jmap.request([["Mailbox/get", {"accountId": jmap.account_id, "ids": None}, "m"]])
    inboxes = [m["id"] for m in result["m"][1]["list"] if m["role"] == "inbox"]
    check(len(inboxes) == 1, f"expected one inbox, got {inboxes}")
    return inboxes[0]


def first_page_calls(account_id: str, inbox: str) -> list[list[Any]]:
    return [
        ["Mailbox/get", {"accountId": account_id, "ids": None}, "m"],
        ["Email/query", {"accountId": account_id, "filter": {"inMailbox": inbox},
                         "sort": [{"property": "receivedAt", "isAscending": False}],
                         "limit": PAGE, "calculateTotal": True}, "q"],
        ["Email/get", {"accountId": account_id,
                       "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": LIST_PROPERTIES}, "g"],
    ]  # fmt: skip


def check_first_page(result: dict[str, Any], account: Account) -> dict[str, int]:
    """The page must be the newest PAGE messages, newest first; receivedAt -> size."""
    query, emails = result["q"][1], result["g"][1]
    check(query["total"] == len(account.inbox_dates),
          f"total {query['total']} != {len(account.inbox_dates)}")  # fmt: skip
    check(len(query["ids"]) == PAGE, f"{len(query['ids'])} ids, not {PAGE}")
    by_id = {email["id"]: email for email in emails["list"]}
    check(not emails["notFound"] and len(by_id) == PAGE, f"Email/get: {emails['notFound']}")
    received = [by_id[i]["receivedAt"] for i in query["ids"]]
    check(received == account.newest(PAGE), "the page is not the newest messages, newest first")
    for email in emails["list"]:
        check(email["subject"] and email["from"] and "preview" in email,
              f"incomplete list properties: {email}")  # fmt: skip
    return {email["receivedAt"]: email["size"] for email in emails["list"]}


def warm_process(bridge: BridgeProcess) -> None:
    """One small user's list view, so a fresh process is a running server (imports done,
    code paths exercised) before a cold cache is timed. Another user: no shared cache."""
    jmap = Jmap(bridge.url, "warm", USERS["warm"])
    try:
        jmap.session()
        inbox = inbox_of(jmap)
        jmap.request(first_page_calls(jmap.account_id or "", inbox))
    finally:
        jmap.close()


# --------------------------------------------------------------------------------------
# Raw IMAP
# --------------------------------------------------------------------------------------


def imap_login(dovecot: Dovecot, account: Account) -> IMAPClient:
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=300)
    client.normalise_times = False  # aware datetimes
    client.login(account.user, account.password)
    return client


def raw_first_page(client: IMAPClient, counts: bool = False) -> dict[int, dict[bytes, Any]]:
    """What a plain IMAP client does for the same list view, on a logged-in connection;
    with ``counts``, the folder list carries each folder's message and unread counts, as
    JMAP's Mailbox/get must (LIST-STATUS, RFC 5819)."""
    if counts:
        list_with_counts(client)
    else:
        client.list_folders()
    client.select_folder("INBOX", readonly=True)
    uids = client.sort(["REVERSE ARRIVAL"])[:PAGE]
    return client.fetch(uids, RAW_LIST_ITEMS)


def list_with_counts(client: IMAPClient) -> list[bytes]:
    """``LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN))``: one STATUS response a folder.
    imapclient has no LIST return options: the command goes through its imaplib."""
    imap = client._imap
    kind, _ = imap._simple_command("LIST", '""', '"*"', "RETURN", "(STATUS (MESSAGES UNSEEN))")
    check(kind == "OK", f"LIST-STATUS: {kind}")
    imap._untagged_response(kind, [], "LIST")
    _, statuses = imap._untagged_response(kind, [], "STATUS")
    return [status for status in statuses if status]


def check_raw_page(page: dict[int, dict[bytes, Any]], account: Account) -> dict[str, int]:
    check(len(page) == PAGE, f"raw FETCH returned {len(page)} messages")
    dates = {utc(item[b"INTERNALDATE"]): item[b"RFC822.SIZE"] for item in page.values()}
    check(sorted(dates, reverse=True) == account.newest(PAGE), "raw page is not the newest")
    check(all(b"PREVIEW" in item and b"ENVELOPE" in item for item in page.values()),
          "raw FETCH lacks PREVIEW or ENVELOPE")  # fmt: skip
    return dates


# --------------------------------------------------------------------------------------
# B1 and B2
# --------------------------------------------------------------------------------------


def cold_first_page(jmap: Jmap) -> tuple[dict[str, Any], tuple[float, float, float, float]]:
    """What a client does first (GET session, POST [Mailbox/get], POST the page): the page,
    and the times at its start and after each request."""
    start = time.perf_counter()
    jmap.session()
    after_session = time.perf_counter()
    inbox = inbox_of(jmap)
    after_mailboxes = time.perf_counter()
    page = jmap.request(first_page_calls(jmap.account_id or "", inbox))
    return page, (start, after_session, after_mailboxes, time.perf_counter())


def bench_first_page(dovecot: Dovecot, account: Account, results: Results) -> None:
    reps = results.sizes.reps
    sizes_seen: dict[str, dict[str, int]] = {}
    peak = 0

    def bridge_cold(record: bool) -> None:
        nonlocal peak
        with BridgeProcess(dovecot.port) as bridge:
            results.facts.setdefault("idle_rss_kib", bridge.memory_kib("VmRSS"))
            # A fresh process: its first request is this one (bridge warms up at start).
            jmap = Jmap(bridge.url, account.user, account.password)
            try:
                page, (start, after_session, after_mailboxes, end) = cold_first_page(jmap)
                sizes_seen["bridge"] = check_first_page(page, account)
                # Memory and cache size count once the whole account is indexed.
                waited = jmap.wait_indexed()
            finally:
                jmap.close()
            if record:
                if waited is not None:
                    results.sample("b1.bridge.indexed", end - start + waited)
                results.sample("b1.bridge", end - start)
                results.sample("b1.bridge.session", after_session - start)
                results.sample("b1.bridge.mailboxes", after_mailboxes - after_session)
                results.sample("b1.bridge.page", end - after_mailboxes)
                peak = max(peak, bridge.memory_kib())
                results.facts["b1_cache_bytes"] = user_cache(bridge, account.user)

    def raw_cold(counts: bool) -> Callable[[bool], None]:
        def run(record: bool) -> None:
            def work() -> tuple[IMAPClient, dict[int, dict[bytes, Any]]]:
                client = imap_login(dovecot, account)
                return client, raw_first_page(client, counts)

            seconds, (client, page) = timed(work)
            client.logout()
            sizes_seen["raw"] = check_raw_page(page, account)
            if record:
                results.sample("b1.raw_counts" if counts else "b1.raw", seconds)

        return run

    progress(f"B1 cold first page: {account.total:,} messages, {reps} reps (+1 warm-up)")
    rotate(reps + 1, [bridge_cold, raw_cold(False), raw_cold(True)])
    check(sizes_seen["bridge"] == sizes_seen["raw"], "bridge and IMAP disagree on sizes")
    results.facts["b1_peak_kib"] = peak
    results.facts["b1_messages"] = account.total

    progress(f"B2 warm first page: {reps} reps (+1 warm-up)")
    with BridgeProcess(dovecot.port) as bridge:
        warm_process(bridge)
        jmap = Jmap(bridge.url, account.user, account.password)
        logged_in = imap_login(dovecot, account)
        try:
            jmap.session()
            inbox = inbox_of(jmap)
            calls = first_page_calls(jmap.account_id or "", inbox)
            check_first_page(jmap.request(calls), account)  # the cold one, not timed
            jmap.wait_indexed()  # warm: the steady state, whole account indexed

            def bridge_warm(record: bool) -> None:
                seconds, page = timed(lambda: jmap.request(calls))
                check_first_page(page, account)
                if record:
                    results.sample("b2.bridge", seconds)

            def raw_new(record: bool) -> None:
                def work() -> tuple[IMAPClient, dict[int, dict[bytes, Any]]]:
                    client = imap_login(dovecot, account)
                    return client, raw_first_page(client)

                seconds, (client, page) = timed(work)
                client.logout()
                check_raw_page(page, account)
                if record:
                    results.sample("b2.raw_new", seconds)

            def raw_logged_in(record: bool) -> None:
                seconds, page = timed(lambda: raw_first_page(logged_in))
                logged_in.unselect_folder()
                check_raw_page(page, account)
                if record:
                    results.sample("b2.raw_logged_in", seconds)

            rotate(reps + 1, [bridge_warm, raw_new, raw_logged_in])
            results.facts["b2_peak_kib"] = bridge.memory_kib()
        finally:
            jmap.close()
            logged_in.logout()


def rotate(repetitions: int, sides: list[Callable[[bool], None]]) -> None:
    """Each side once per repetition, in rotating order; the first repetition is a warm-up."""
    for rep in range(repetitions):
        shift = rep % len(sides)
        for side in sides[shift:] + sides[:shift]:
            side(rep > 0)


# --------------------------------------------------------------------------------------
# B3
# --------------------------------------------------------------------------------------


def changes_calls(account_id: str, since: str) -> list[list[Any]]:
    def get(path: str, call_id: str) -> list[Any]:
        return ["Email/get", {"accountId": account_id,
                              "#ids": {"resultOf": "c", "name": "Email/changes", "path": path},
                              "properties": LIST_PROPERTIES}, call_id]  # fmt: skip

    return [
        ["Email/changes", {"accountId": account_id, "sinceState": since}, "c"],
        get("/created", "n"),
        get("/updated", "u"),
    ]


@dataclass
class Mutation:
    created: set[str]  # receivedAt of the appended messages
    updated: dict[str, bool]  # receivedAt of the touched messages -> flagged now


class Mutator:
    """Another IMAP client of the account: flags 10 messages and appends 5 per round."""

    def __init__(self, dovecot: Dovecot, account: Account, rounds: int) -> None:
        self.client = imap_login(dovecot, account)
        self.client.select_folder("INBOX")
        uids = self.client.search("ALL")
        check(len(uids) == len(account.inbox_dates), f"INBOX has {len(uids)} messages")
        rng = random.Random(7)
        self.picks = rng.sample(uids, FLAGGED_PER_REP * rounds)
        start = max(account.inbox_dates) + timedelta(days=1)
        self.fresh = list(bulk_messages(APPENDED_PER_REP * rounds, seed=99, start=start))

    def round(self, number: int) -> Mutation:
        uids = self.picks[number * FLAGGED_PER_REP : (number + 1) * FLAGGED_PER_REP]
        before = self.client.fetch(uids, ["FLAGS", "INTERNALDATE"])
        add = [u for u in uids if b"\\Flagged" not in before[u][b"FLAGS"]]
        remove = [u for u in uids if u not in add]
        if add:
            self.client.add_flags(add, [b"\\Flagged"], silent=True)
        if remove:
            self.client.remove_flags(remove, [b"\\Flagged"], silent=True)
        updated = {utc(before[u][b"INTERNALDATE"]): u in add for u in uids}
        created = set()
        batch = self.fresh[number * APPENDED_PER_REP : (number + 1) * APPENDED_PER_REP]
        for message in batch:
            self.client.append("INBOX", message.raw, message.flags, msg_time=message.internal_date)
            created.add(utc(message.internal_date))
        return Mutation(created, updated)

    def close(self) -> None:
        self.client.logout()


Reader = Callable[[Mutation, bool], None]  # reads a change; timed and kept when True


def each_reads_first(mutator: Mutator, reps: int, readers: Sequence[Reader]) -> None:
    """A round of changes for each reader per rep, which it is timed reading first; the
    others read it after, untimed. On Maildir the first session to look after another
    client's change pays the server's rescan of the folder (about 90 ms at 50,000
    messages) and the one after it does not: taking turns over one change gave one side
    the cheap turn in four reps of seven, which its median then showed. Rep 0 warms up.

    The readers' order is shuffled each rep (seeded). In a fixed order each reader's timed
    reads are every second delta it reads, while a bridge on SQLite checkpoints its log
    every 256 pages: at a 1,000-message INBOX, a commit of 2.5-3.2 ms every second or
    third delta where the others take 0.4 ms. A fixed parity could put that in nearly
    every timed read of one side, or in none.
    The mutator needs ``len(readers) * (reps + 1)`` rounds."""
    order = random.Random(11)
    rounds = itertools.count()
    for rep in range(reps + 1):
        for timed_reader in order.sample(list(readers), len(readers)):
            change = mutator.round(next(rounds))
            timed_reader(change, rep > 0)
            for other in readers:
                if other is not timed_reader:
                    other(change, False)


def bench_delta(dovecot: Dovecot, account: Account, label: str, results: Results) -> None:
    reps = results.sizes.reps
    size = len(account.inbox_dates)
    progress(f"B3 delta sync ({label}), {size:,}-message INBOX: {reps} reps (+1 warm-up)")
    with BridgeProcess(dovecot.port) as bridge:
        warm_process(bridge)
        jmap = Jmap(bridge.url, account.user, account.password)
        raw = imap_login(dovecot, account)
        mutator = Mutator(dovecot, account, 2 * (reps + 1))  # each_reads_first, two sides
        try:
            jmap.session()
            account_id = jmap.account_id or ""
            start = time.perf_counter()
            inbox = inbox_of(jmap)
            results.facts[f"b3_{label}_first_sync_s"] = time.perf_counter() - start
            check_first_page(jmap.request(first_page_calls(account_id, inbox)), account)
            # Warm: whole account indexed. A state from before that would see the
            # indexing itself as created Emails.
            waited = jmap.wait_indexed()
            if waited is not None:
                results.facts[f"b3_{label}_indexed_s"] = time.perf_counter() - start
            since = jmap.request([["Email/get", {"accountId": account_id, "ids": []}, "s"]])
            state = since["s"][1]["state"]
            raw.enable("CONDSTORE")
            modseq = raw.select_folder("INBOX", readonly=True)[b"HIGHESTMODSEQ"]
            raw.unselect_folder()

            def bridge_delta(change: Mutation, record: bool) -> None:
                nonlocal state
                seconds, result = timed(lambda: jmap.request(changes_calls(account_id, state)))
                changes, new, touched = result["c"][1], result["n"][1], result["u"][1]
                check(not changes["hasMoreChanges"] and not changes["destroyed"],
                      f"unexpected changes: {changes}")  # fmt: skip
                check(len(changes["created"]) == APPENDED_PER_REP, f"created: {changes}")
                check(len(changes["updated"]) == FLAGGED_PER_REP, f"updated: {changes}")
                check({e["receivedAt"] for e in new["list"]} == change.created,
                      "created Emails are not the appended messages")  # fmt: skip
                flagged = {e["receivedAt"]: "$flagged" in e["keywords"] for e in touched["list"]}
                check(flagged == change.updated, "updated Emails do not show the new flags")
                state = changes["newState"]
                if record:
                    results.sample(f"b3.{label}.bridge", seconds)

            def raw_delta(change: Mutation, record: bool) -> None:
                nonlocal modseq

                def work() -> tuple[int, dict[int, dict[bytes, Any]]]:
                    selected = raw.select_folder("INBOX", readonly=True)
                    # UID SEARCH MODSEQ: imapclient's FETCH takes no "1:*" (CHANGEDSINCE).
                    changed = raw.search(["MODSEQ", modseq + 1])
                    return selected[b"HIGHESTMODSEQ"], raw.fetch(changed, RAW_LIST_ITEMS)

                seconds, (new_modseq, fetched) = timed(work)
                raw.unselect_folder()
                dates = {utc(item[b"INTERNALDATE"]) for item in fetched.values()}
                check(dates == change.created | set(change.updated),
                      "raw delta is not the changed messages")  # fmt: skip
                modseq = new_modseq
                if record:
                    results.sample(f"b3.{label}.raw", seconds)

            each_reads_first(mutator, reps, [bridge_delta, raw_delta])

            messages = size + APPENDED_PER_REP * 2 * (reps + 1)
            results.facts[f"b3_{label}_messages"] = messages
            results.facts[f"b3_{label}_cache_bytes"] = user_cache(bridge, account.user)
            if label == "small":
                seconds = summarize_all(jmap, inbox, messages)
                results.facts["summaries_all_s"] = seconds
                results.facts["b3_small_cache_full_bytes"] = user_cache(bridge, account.user)
            results.facts[f"b3_{label}_peak_kib"] = bridge.memory_kib()
        finally:
            jmap.close()
            raw.logout()
            mutator.close()


def summarize_all(jmap: Jmap, inbox: str, messages: int) -> float:
    """Email/get the list properties of every message, as a client filling its own cache
    would: afterwards bridge's cache holds a summary of each. Returns the seconds it took."""
    account_id = jmap.account_id or ""
    start = time.perf_counter()
    position, seen = 0, 0
    while True:
        calls = [
            ["Email/query", {"accountId": account_id, "filter": {"inMailbox": inbox},
                             "sort": [{"property": "receivedAt", "isAscending": False}],
                             "position": position, "limit": 1000}, "q"],
            ["Email/get", {"accountId": account_id,
                           "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                           "properties": LIST_PROPERTIES}, "g"],
        ]  # fmt: skip
        result = jmap.request(calls)
        got = len(result["g"][1]["list"])
        if not got:
            break
        seen += got
        position += got
    check(seen == messages, f"listed {seen} of {messages} messages")
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------
# All of it
# --------------------------------------------------------------------------------------


def run_all(sizes: Sizes) -> Results:
    results = Results(sizes)
    with Dovecot(dict(USERS)) as dovecot:
        progress("seeding")
        start = time.perf_counter()
        seed_demo(dovecot, "warm")
        cold = seed_account(dovecot, "cold", sizes.inbox, sizes.folders, sizes.per_folder)
        small = seed_account(dovecot, "small", sizes.delta_small)
        large = seed_account(dovecot, "large", sizes.delta_large)
        results.facts["seed_s"] = time.perf_counter() - start
        progress(f"seeded in {results.facts['seed_s']:.1f} s")
        bench_first_page(dovecot, cold, results)
        bench_delta(dovecot, small, "small", results)
        bench_delta(dovecot, large, "large", results)
    # Maildir makes the server's own delta grow with the folder: a flag change renames a
    # file, and the next session to read that folder rescans it. sdbox keeps flags in the
    # index, so there the growth that is left is bridge's (and the server's CHANGEDSINCE).
    with Dovecot(dict(USERS), mail_format="sdbox") as dovecot:
        progress("seeding sdbox")
        small = seed_account(dovecot, "small", sizes.delta_small)
        large = seed_account(dovecot, "large", sizes.delta_large)
        bench_delta(dovecot, small, "small_sdbox", results)
        bench_delta(dovecot, large, "large_sdbox", results)
    results.facts["bench_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return results
