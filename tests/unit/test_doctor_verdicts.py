"""What doctor forecasts for each JMAP feature, from an upstream's capabilities."""

from __future__ import annotations

import pytest

from bridge.config import Settings
from bridge.doctor.verdicts import ImapFacts, features
from bridge.imap.responses import ObjectIds

DOVECOT = frozenset(
    "IMAP4REV1 IDLE NOTIFY CONDSTORE QRESYNC SORT SORT=DISPLAY MOVE UIDPLUS QUOTA".split()
)
IMAP4D = frozenset("IMAP4REV1 NAMESPACE ID IDLE LITERAL+ UNSELECT".split())


def verdicts(facts: ImapFacts) -> dict[str, tuple[str, str]]:
    return {feature.name: (feature.level, feature.detail) for feature in features(facts)}


def test_a_server_with_everything() -> None:
    found = verdicts(
        ImapFacts(DOVECOT, frozenset({"QRESYNC", "CONDSTORE"}), ObjectIds.DOVECOT, True, True)
    )
    assert {name: level for name, (level, _) in found.items()} == {
        "Email/changes": "full", "Mailbox ids": "full", "Email ids": "full", "Threads": "full",
        "Push": "full", "Search": "full", "Sort by subject/sentAt": "full",
        "Sort by from/to": "full", "Email/set mailboxIds": "full", "Email/set destroy": "full",
        "Quota": "full",
    }  # fmt: skip
    assert found["Email ids"][1] == "server X-GUID: kept across MOVE and COPY"


def test_a_minimal_server() -> None:
    found = verdicts(
        ImapFacts(IMAP4D, frozenset(), None, search_utf8=False, search_refusal="BADCHARSET")
    )
    assert found["Email/changes"] == (
        "slower",
        "no CONDSTORE: INBOX followed from unsolicited FETCH/EXPUNGE while kept open; other "
        "folders' flag changes found by background scans every 60 s",
    )
    assert found["Mailbox ids"] == (
        "slower",
        "stable while the name stays (kept in the cache); a rename by another client is "
        "matched by UIDVALIDITY and message count",
    )
    assert found["Email ids"][1] == "derived from headers and size: a changed message gets a new id"
    assert found["Threads"][1].startswith("computed by bridge")
    assert found["Push"] == ("slower", "IDLE on INBOX + pipelined STATUS every 1 s")
    assert found["Search"] == ("slower", "server SEARCH; CHARSET UTF-8 refused [BADCHARSET]")
    assert found["Sort by from/to/subject/sentAt"] == (
        "slower",
        "no SORT: across mailboxes from the cache's sort keys everywhere, made at the first "
        "such sort",
    )
    lifted = "others' \\Deleted marks lifted around EXPUNGE, a small race"
    assert found["Email/set mailboxIds"] == ("slower", f"no MOVE, no UIDPLUS: COPY, then {lifted}")
    assert found["Email/set destroy"] == ("slower", f"no UIDPLUS: {lifted}")
    assert found["Quota"] == ("none", "no QUOTA")


def test_ids_the_server_claims_but_did_not_give() -> None:
    # OBJECTID advertised, but the sample came back without ids: bridge derives them.
    facts = ImapFacts(
        DOVECOT | {"OBJECTID"}, frozenset(), ObjectIds.OBJECTID,
        folder_ids_seen=False, email_ids_seen=False, thread_ids_seen=False,
    )  # fmt: skip
    found = verdicts(facts)
    assert found["Mailbox ids"][0] == "slower"
    assert found["Email ids"][0] == "slower"
    assert found["Threads"][1].startswith("computed by bridge")
    assert found["Email/changes"] == (
        "slower",
        "CONDSTORE without QRESYNC: expunges found by UID SEARCH ALL",
    )


def test_the_flag_scan_interval_is_the_one_configured() -> None:
    assert ImapFacts(IMAP4D, frozenset(), None).flag_scan_interval == (
        Settings().flag_scan_interval
    )
    facts = ImapFacts(IMAP4D, frozenset(), None, flag_scan_interval=7.5)
    assert verdicts(facts)["Email/changes"][1].endswith("background scans every 7.5 s")


@pytest.mark.parametrize(
    ("capabilities", "enabled", "push"),
    [
        ("IDLE NOTIFY CONDSTORE", "CONDSTORE",
         ("full", "NOTIFY: every folder's changes as they happen")),
        # RFC 5465 §5.2: NOTIFY without CONDSTORE misses flag changes in other folders.
        ("IDLE NOTIFY LIST-EXTENDED LIST-STATUS", "", ("slower",
         "NOTIFY without CONDSTORE goes unused: IDLE on INBOX + one LIST-STATUS every 1 s")),
        ("IDLE LIST-EXTENDED LIST-STATUS", "",
         ("slower", "IDLE on INBOX + one LIST-STATUS every 1 s")),
        ("IDLE LIST-STATUS", "", ("slower", "IDLE on INBOX + pipelined STATUS every 1 s")),
        ("IDLE", "", ("slower", "IDLE on INBOX + pipelined STATUS every 1 s")),
        ("", "", ("slower", "no IDLE: the watcher reconnects and syncs every 1 s")),
    ],
)  # fmt: skip
def test_push(capabilities: str, enabled: str, push: tuple[str, str]) -> None:
    facts = ImapFacts(
        frozenset({"IMAP4REV1", *capabilities.split()}), frozenset(enabled.split()), None
    )
    assert verdicts(facts)["Push"] == push


@pytest.mark.parametrize(
    ("capabilities", "move", "destroy"),
    [
        ("MOVE UIDPLUS", ("full", "MOVE"),
         ("full", "UIDPLUS: UID EXPUNGE of exactly those messages")),
        ("UIDPLUS", ("slower", "no MOVE: COPY, then UID EXPUNGE"),
         ("full", "UIDPLUS: UID EXPUNGE of exactly those messages")),
        ("MOVE", ("full", "MOVE"),
         ("slower", "no UIDPLUS: others' \\Deleted marks lifted around EXPUNGE, a small race")),
        ("", ("slower", "no MOVE, no UIDPLUS: COPY, then others' \\Deleted marks lifted "
              "around EXPUNGE, a small race"),
         ("slower", "no UIDPLUS: others' \\Deleted marks lifted around EXPUNGE, a small race")),
    ],
)  # fmt: skip
def test_move_and_destroy(
    capabilities: str, move: tuple[str, str], destroy: tuple[str, str]
) -> None:
    found = verdicts(ImapFacts(frozenset({"IMAP4REV1", *capabilities.split()}), frozenset(), None))
    assert (found["Email/set mailboxIds"], found["Email/set destroy"]) == (move, destroy)
