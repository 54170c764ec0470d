"""What each JMAP feature will be like on an upstream, from what ``doctor`` saw there.

Pure: the facts come in, the verdicts go out. Each verdict follows what bridge itself does
with these capabilities (sync, ids, watcher, Email/query), so it is a forecast, not a guess.
"""

from __future__ import annotations

import msgspec

from bridge.config import Settings
from bridge.doctor.report import Feature
from bridge.imap.responses import ObjectIds
from bridge.mail.watcher import SWEEP


class ImapFacts(msgspec.Struct, frozen=True):
    capabilities: frozenset[str]
    enabled: frozenset[str]
    object_ids: ObjectIds | None
    # What a sample showed (None: nothing to look at, e.g. every folder empty).
    folder_ids_seen: bool | None = None
    email_ids_seen: bool | None = None
    thread_ids_seen: bool | None = None
    # Whether UID SEARCH CHARSET UTF-8 with non-ASCII text was accepted; the code if not.
    search_utf8: bool | None = None
    search_refusal: str | None = None
    # Seconds between background flag scans of a folder without CONDSTORE (Settings).
    flag_scan_interval: float = Settings().flag_scan_interval


def features(facts: ImapFacts) -> list[Feature]:
    return [
        _changes(facts),
        _mailbox_ids(facts),
        _email_ids(facts),
        _threads(facts),
        _push(facts),
        _search(facts),
        *_sorts(facts),
        _move(facts),
        _destroy(facts),
        _quota(facts),
    ]


def _changes(facts: ImapFacts) -> Feature:
    name = "Email/changes"
    if "QRESYNC" in facts.enabled:
        return Feature(name, "full", "QRESYNC: changes and expunges come with the SELECT")
    if "CONDSTORE" in facts.capabilities:
        return Feature(
            name, "slower", "CONDSTORE without QRESYNC: expunges found by UID SEARCH ALL"
        )
    return Feature(
        name,
        "slower",
        "no CONDSTORE: INBOX followed from unsolicited FETCH/EXPUNGE while kept open; other "
        f"folders' flag changes found by background scans every {facts.flag_scan_interval:g} s",
    )


def _mailbox_ids(facts: ImapFacts) -> Feature:
    name = "Mailbox ids"
    item = facts.object_ids.status_item if facts.object_ids else None
    if item and facts.folder_ids_seen is not False:
        return Feature(name, "full", f"stable ({item})")
    return Feature(
        name,
        "slower",
        "stable while the name stays (kept in the cache); a rename by another client is "
        "matched by UIDVALIDITY and message count",
    )


def _email_ids(facts: ImapFacts) -> Feature:
    name = "Email ids"
    if facts.object_ids is not None and facts.email_ids_seen is not False:
        item = facts.object_ids.fetch_items[0]
        return Feature(name, "full", f"server {item}: kept across MOVE and COPY")
    return Feature(name, "slower", "derived from headers and size: a changed message gets a new id")


def _threads(facts: ImapFacts) -> Feature:
    name = "Threads"
    items = facts.object_ids.fetch_items if facts.object_ids else ()
    if len(items) > 1 and facts.thread_ids_seen is not False:
        return Feature(name, "full", f"server {items[1]}")
    return Feature(name, "full", "computed by bridge from Message-ID, References and subject")


def _push(facts: ImapFacts) -> Feature:
    name = "Push"
    caps = facts.capabilities
    if "NOTIFY" in caps and "CONDSTORE" in facts.enabled:
        return Feature(name, "full", "NOTIFY: every folder's changes as they happen")
    if "IDLE" not in caps:
        return Feature(
            name, "slower", f"no IDLE: the watcher reconnects and syncs every {SWEEP:g} s"
        )
    poll = "one LIST-STATUS" if {"LIST-EXTENDED", "LIST-STATUS"} <= caps else "pipelined STATUS"
    # RFC 5465 §5.2: without CONDSTORE, NOTIFY leaves out flag changes outside the selected
    # folder, so the watcher does not use it.
    unused = "NOTIFY without CONDSTORE goes unused: " if "NOTIFY" in caps else ""
    return Feature(name, "slower", f"{unused}IDLE on INBOX + {poll} every {SWEEP:g} s")


def _search(facts: ImapFacts) -> Feature:
    name = "Search"
    if facts.search_utf8 is False:
        code = f" [{facts.search_refusal}]" if facts.search_refusal else ""
        return Feature(name, "slower", f"server SEARCH; CHARSET UTF-8 refused{code}")
    if facts.search_utf8 is None:
        return Feature(name, "full", "server SEARCH (CHARSET UTF-8 not tried: no folder)")
    return Feature(name, "full", "server SEARCH, CHARSET UTF-8 ok")


# Across folders, and wherever the server cannot sort as JMAP asks, header sorts come
# from the keys the cache keeps per Email (bridge.mail.header_sort).
_CACHED_KEYS = "across mailboxes from the cache's sort keys"


def _sorts(facts: ImapFacts) -> list[Feature]:
    caps = facts.capabilities
    if "SORT" not in caps:
        reason = f"no SORT: {_CACHED_KEYS} everywhere, made at the first such sort"
        return [Feature("Sort by from/to/subject/sentAt", "slower", reason)]
    subject = Feature("Sort by subject/sentAt", "full", f"SORT in one mailbox, {_CACHED_KEYS}")
    if "SORT=DISPLAY" in caps:
        return [subject, Feature("Sort by from/to", "full",
                                 f"SORT=DISPLAY in one mailbox, {_CACHED_KEYS}")]  # fmt: skip
    return [subject, Feature("Sort by from/to", "full",
                             f"no SORT=DISPLAY: {_CACHED_KEYS}, in one mailbox too")]  # fmt: skip


# What bridge does where it cannot UID EXPUNGE (ImapConnection.expunge_uids).
_LIFTED = "others' \\Deleted marks lifted around EXPUNGE, a small race"


def _move(facts: ImapFacts) -> Feature:
    name = "Email/set mailboxIds"
    if "MOVE" in facts.capabilities:
        return Feature(name, "full", "MOVE")
    if "UIDPLUS" in facts.capabilities:
        return Feature(name, "slower", "no MOVE: COPY, then UID EXPUNGE")
    return Feature(name, "slower", f"no MOVE, no UIDPLUS: COPY, then {_LIFTED}")


def _destroy(facts: ImapFacts) -> Feature:
    name = "Email/set destroy"
    if "UIDPLUS" in facts.capabilities:
        return Feature(name, "full", "UIDPLUS: UID EXPUNGE of exactly those messages")
    return Feature(name, "slower", f"no UIDPLUS: {_LIFTED}")


def _quota(facts: ImapFacts) -> Feature:
    if "QUOTA" in facts.capabilities:
        return Feature("Quota", "full", "QUOTA (serve it with --upstream-quota)")
    return Feature("Quota", "none", "no QUOTA")
