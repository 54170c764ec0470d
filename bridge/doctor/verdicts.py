"""What each JMAP feature will be like on an upstream, from what ``doctor`` saw there.

Pure: the facts come in, the verdicts go out. Each verdict follows what bridge itself does
with these capabilities (sync, ids, watcher, Email/query), so it is a forecast, not a guess.
"""

from __future__ import annotations

import msgspec

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
    return Feature(name, "slower", "no CONDSTORE: flag changes found by scanning every flag")


def _mailbox_ids(facts: ImapFacts) -> Feature:
    name = "Mailbox ids"
    item = facts.object_ids.status_item if facts.object_ids else None
    if item and facts.folder_ids_seen is not False:
        return Feature(name, "full", f"stable ({item})")
    return Feature(
        name, "slower", "derived from names and UIDVALIDITY: a rename elsewhere gives a new id"
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
    if "NOTIFY" in facts.capabilities and "CONDSTORE" in facts.enabled:
        return Feature(name, "full", "NOTIFY: every folder's changes as they happen")
    if "NOTIFY" in facts.capabilities:
        # RFC 5465 §5.2: without CONDSTORE, flag changes outside the selected folder go
        # unreported, so the watcher sweeps as often as without NOTIFY.
        return Feature(
            name, "slower", f"NOTIFY without CONDSTORE: flag changes swept every {SWEEP:g} s"
        )
    if "IDLE" in facts.capabilities:
        return Feature(name, "slower", f"IDLE on INBOX, other folders polled every {SWEEP:g} s")
    return Feature(name, "slower", f"no IDLE: every folder polled every {SWEEP:g} s")


def _search(facts: ImapFacts) -> Feature:
    name = "Search"
    if facts.search_utf8 is False:
        code = f" [{facts.search_refusal}]" if facts.search_refusal else ""
        return Feature(name, "slower", f"server SEARCH; CHARSET UTF-8 refused{code}")
    if facts.search_utf8 is None:
        return Feature(name, "full", "server SEARCH (CHARSET UTF-8 not tried: no folder)")
    return Feature(name, "full", "server SEARCH, CHARSET UTF-8 ok")


def _sorts(facts: ImapFacts) -> list[Feature]:
    caps = facts.capabilities
    if "SORT" not in caps:
        return [Feature("Sort by from/to/subject", "none", "no SORT: unsupportedSort")]
    subject = Feature("Sort by subject/sentAt", "full", "SORT, within one mailbox")
    if "SORT=DISPLAY" in caps:
        return [subject, Feature("Sort by from/to", "full", "SORT=DISPLAY, within one mailbox")]
    return [subject, Feature("Sort by from/to", "none", "SORT without SORT=DISPLAY")]


def _move(facts: ImapFacts) -> Feature:
    name = "Email/set mailboxIds"
    if "MOVE" in facts.capabilities:
        return Feature(name, "full", "MOVE")
    if "UIDPLUS" in facts.capabilities:
        return Feature(name, "slower", "no MOVE: COPY, then UID EXPUNGE")
    return Feature(name, "none", "no MOVE and no UIDPLUS: a move cannot remove the original")


def _destroy(facts: ImapFacts) -> Feature:
    name = "Email/set destroy"
    if "UIDPLUS" in facts.capabilities:
        return Feature(name, "full", "UIDPLUS: UID EXPUNGE of exactly those messages")
    return Feature(name, "none", "no UIDPLUS: a bare EXPUNGE would take others' deletions too")


def _quota(facts: ImapFacts) -> Feature:
    if "QUOTA" in facts.capabilities:
        return Feature("Quota", "full", "QUOTA (serve it with --upstream-quota)")
    return Feature("Quota", "none", "no QUOTA")
