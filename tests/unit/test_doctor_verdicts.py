"""What doctor forecasts for each JMAP feature, from an upstream's capabilities."""

from __future__ import annotations

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
        "no CONDSTORE: flag changes found by scanning every flag",
    )
    assert found["Mailbox ids"][0] == "slower" and "names" in found["Mailbox ids"][1]
    assert found["Email ids"][1] == "derived from headers and size: a changed message gets a new id"
    assert found["Threads"][1].startswith("computed by bridge")
    assert found["Push"] == ("slower", "IDLE on INBOX, other folders polled every 1 s")
    assert found["Search"] == ("slower", "server SEARCH; CHARSET UTF-8 refused [BADCHARSET]")
    assert found["Sort by from/to/subject"] == ("none", "no SORT: unsupportedSort")
    assert found["Email/set mailboxIds"][0] == "none"
    assert found["Email/set destroy"][0] == "none"
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


def test_notify_without_condstore_still_sweeps() -> None:
    facts = ImapFacts(frozenset({"IMAP4REV1", "IDLE", "NOTIFY"}), frozenset(), None)
    assert verdicts(facts)["Push"] == (
        "slower",
        "NOTIFY without CONDSTORE: flag changes swept every 1 s",
    )
