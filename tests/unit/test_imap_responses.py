"""The pure parsers, fed raw server bytes."""

from __future__ import annotations

import datetime

import pytest

from bridge.imap.errors import UpstreamUnavailable
from bridge.imap.models import MailboxStatus
from bridge.imap.responses import (
    ListEntry,
    build_listings,
    collect_fetches,
    copied_uids,
    format_sequence_set,
    object_id,
    parse_capabilities,
    parse_esearch,
    parse_fetch,
    parse_id,
    parse_list,
    parse_myrights,
    parse_namespace_delimiter,
    parse_search,
    parse_sequence_set,
    parse_status,
    parse_vanished,
    select_result,
    sequence_set_covers,
    special_use_of,
)
from bridge.imap.wire import Reply, Untagged, read_untagged


def one(raw: bytes) -> Untagged:
    (response,) = read_untagged(raw)
    return response


# -- LIST ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name", "delimiter", "attributes"),
    [
        (b'* LIST () "/" INBOX\r\n', "INBOX", "/", set()),
        (b'* LIST (\\HasNoChildren) "/" "Sent Items"\r\n', "Sent Items", "/", {"\\hasnochildren"}),
        (
            b'* LIST (\\Noselect \\HasChildren) "." "a.b"\r\n',
            "a.b",
            ".",
            {"\\noselect", "\\haschildren"},
        ),
        (b"* LIST () NIL flat\r\n", "flat", None, set()),
        # Unquoted digits and a quoted NIL are names, not a number and nothing.
        (b'* LIST () "/" 123\r\n', "123", "/", set()),
        (b'* LIST () "/" "NIL"\r\n', "NIL", "/", set()),
        (b'* LIST () "\\\\" "a\\\\b"\r\n', "a\\b", "\\", set()),
        (
            b'* LIST () "/" "R&AOk-unions \\"Q3\\" \\\\ 2026"\r\n',
            'Réunions "Q3" \\ 2026',
            "/",
            set(),
        ),
        (b'* LIST () "/" {11}\r\nwith\r\nbreak\r\n', "with\r\nbreak", "/", set()),
        (
            b'* LIST (\\Subscribed \\Drafts) "/" Drafts ("CHILDINFO" ("SUBSCRIBED"))\r\n',
            "Drafts",
            "/",
            {"\\subscribed", "\\drafts"},
        ),
    ],
)
def test_parse_list(raw: bytes, name: str, delimiter: str | None, attributes: set[str]) -> None:
    entry = parse_list(one(raw))
    assert (entry.name, entry.delimiter, set(entry.attributes)) == (name, delimiter, attributes)


def test_parse_list_keeps_a_name_that_is_not_modified_utf7() -> None:
    assert parse_list(one(b'* LIST () "/" "a&b"\r\n')).name == "a&b"


@pytest.mark.parametrize("raw", [b"* LIST\r\n", b'* LIST "/" INBOX\r\n', b"* LIST (\r\n"])
def test_parse_list_rejects_garbage(raw: bytes) -> None:
    with pytest.raises(UpstreamUnavailable):
        parse_list(one(raw))


# -- STATUS -------------------------------------------------------------------------------


def test_parse_status_dovecot() -> None:
    raw = (
        b'* STATUS "sp ace" (MESSAGES 3 UIDNEXT 7 UIDVALIDITY 1795641968 UNSEEN 1 '
        b"HIGHESTMODSEQ 12 X-GUID 48d2981f6a52076bf521000083ecc375)\r\n"
    )
    name, status = parse_status(one(raw))
    assert name == "sp ace"
    assert status == MailboxStatus(3, 1, 7, 1795641968, 12, "48d2981f6a52076bf521000083ecc375")


def test_parse_status_objectid_and_no_modseq() -> None:
    raw = b"* STATUS INBOX (MESSAGES 0 UNSEEN 0 UIDNEXT 1 UIDVALIDITY 5 MAILBOXID (F8a2c))\r\n"
    assert parse_status(one(raw)) == ("INBOX", MailboxStatus(0, 0, 1, 5, None, "F8a2c"))


def test_a_garbled_mailboxid_is_no_id() -> None:
    """Cyrus 3.6.1 answers MAILBOXID asked beside other items with random bytes."""
    raw = b"* STATUS INBOX (MESSAGES 2 UIDNEXT 3 MAILBOXID (Kk^\x0c\xc4U) UNSEEN 2)\r\n"
    assert parse_status(one(raw)) == ("INBOX", MailboxStatus(2, 2, 3, 0, None, None))


@pytest.mark.parametrize(
    ("item", "value", "expected"),
    [
        ("MAILBOXID", (b"o4ya9zu74cjqjd3qw4pvr3h7",), "o4ya9zu74cjqjd3qw4pvr3h7"),
        ("EMAILID", (b"M70db69d77a9583c469d621b2",), "M70db69d77a9583c469d621b2"),
        ("THREADID", (b"Te128b03671fc88d6",), "Te128b03671fc88d6"),
        ("MAILBOXID", (b"\xc9\xaf\x19\xee\xdfU",), None),
        ("MAILBOXID", (b"a.b",), None),  # RFC 8474: letters, digits, "-" and "_" only
        ("EMAILID", (b"M" * 256,), None),
        ("EMAILID", (b"M" * 255,), "M" * 255),
        ("EMAILID", (), None),
        ("THREADID", None, None),  # NIL: not in a thread
        ("X-GUID", b"1795641962.M554185P8693.vm,S=17,W=19", "1795641962.M554185P8693.vm,S=17,W=19"),
        ("X-GUID", b"a b", None),
        ("X-GM-MSGID", 1278455344230334865, "1278455344230334865"),
        ("X-GM-MSGID", b"12a", None),
    ],
)
def test_object_ids_are_checked_against_their_syntax(
    item: str, value: object, expected: str | None
) -> None:
    assert object_id(value, item) == expected


def test_parse_status_of_a_numeric_name() -> None:
    assert parse_status(one(b"* STATUS 2026 (MESSAGES 1)\r\n"))[0] == "2026"


@pytest.mark.parametrize("raw", [b"* STATUS INBOX\r\n", b"* STATUS INBOX (MESSAGES)\r\n"])
def test_parse_status_rejects_garbage(raw: bytes) -> None:
    with pytest.raises(UpstreamUnavailable):
        parse_status(one(raw))


def test_build_listings_joins_status_and_subscriptions() -> None:
    raw = (
        b'* LIST (\\Noselect \\HasChildren) "/" a\r\n'
        b'* LIST (\\HasNoChildren) "/" a/b\r\n'
        b'* LIST (\\Subscribed \\Sent) "/" Sent\r\n'
        b'* LIST (\\NonExistent \\Subscribed) "/" gone\r\n'
        b"* STATUS a/b (MESSAGES 2 UNSEEN 0 UIDNEXT 3 UIDVALIDITY 9)\r\n"
        b"* STATUS Sent (MESSAGES 0 UNSEEN 0 UIDNEXT 1 UIDVALIDITY 8)\r\n"
    )
    responses = read_untagged(raw)
    entries = [parse_list(r) for r in responses if r.kind == "LIST"]
    statuses = dict(parse_status(r) for r in responses if r.kind == "STATUS")
    listings = {listing.name: listing for listing in build_listings(entries, statuses)}
    assert listings["a"].selectable is False and listings["a"].status is None
    assert listings["a/b"].status == MailboxStatus(2, 0, 3, 9)
    assert listings["Sent"].special_use == "\\Sent" and listings["Sent"].subscribed
    assert listings["gone"].selectable is False and listings["gone"].subscribed
    assert not listings["a/b"].subscribed
    # Without RETURN (SUBSCRIBED) the LSUB names decide.
    by_lsub = build_listings(entries, statuses, subscribed=["a/b"])
    assert [listing.name for listing in by_lsub if listing.subscribed] == ["a/b"]


def test_build_listings_drops_duplicates() -> None:
    entries = [ListEntry("x", "/", frozenset()), ListEntry("x", "/", frozenset())]
    assert len(build_listings(entries, {})) == 1


def test_special_use_picks_a_known_attribute() -> None:
    assert special_use_of({"\\haschildren", "\\junk"}) == "\\Junk"
    assert special_use_of({"\\archive", "\\all"}) == "\\All"
    assert special_use_of({"\\haschildren", "\\marked"}) is None


# -- sequence sets, VANISHED, SEARCH ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("1", [1]),
        (b"1:3", [1, 2, 3]),
        ("5:3,9,1", [1, 3, 4, 5, 9]),
        ("2,2,2:3", [2, 3]),
        (7, [7]),
    ],
)
def test_parse_sequence_set(text: str | bytes | int, numbers: list[int]) -> None:
    assert parse_sequence_set(text) == numbers


@pytest.mark.parametrize("text", ["", "1:*", "a", "0", "1:4294967295", "1,,2"])
def test_parse_sequence_set_rejects(text: str) -> None:
    with pytest.raises(UpstreamUnavailable):
        parse_sequence_set(text)


def test_format_sequence_set() -> None:
    assert format_sequence_set([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"
    assert format_sequence_set([4]) == "4"
    with pytest.raises(ValueError):
        format_sequence_set([])


@pytest.mark.parametrize(
    ("raw", "earlier", "uids"),
    [
        (b"* VANISHED (EARLIER) 1:3,5\r\n", True, [1, 2, 3, 5]),
        (b"* VANISHED (EARLIER) 41\r\n", True, [41]),
        (b"* VANISHED 7:8\r\n", False, [7, 8]),
    ],
)
def test_parse_vanished(raw: bytes, earlier: bool, uids: list[int]) -> None:
    assert parse_vanished(one(raw)) == (earlier, uids)


def test_parse_search_ignores_the_modseq_part() -> None:
    assert parse_search(one(b"* SEARCH 2 5 9 (MODSEQ 917162500)\r\n")) == [2, 5, 9]
    assert parse_search(one(b"* SEARCH\r\n")) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'* ESEARCH (TAG "B5") UID ALL 1:3,7\r\n', ("B5", True, {"ALL": b"1:3,7"})),
        (b'* ESEARCH (TAG "B5") UID ALL 4\r\n', ("B5", True, {"ALL": 4})),
        (b'* ESEARCH (TAG "B5") UID\r\n', ("B5", True, {})),
        (b"* ESEARCH COUNT 3 MIN 1\r\n", (None, False, {"COUNT": 3, "MIN": 1})),
    ],
)
def test_parse_esearch(raw: bytes, expected: tuple[object, ...]) -> None:
    assert parse_esearch(one(raw)) == expected


# -- FETCH --------------------------------------------------------------------------------


def test_parse_fetch_dovecot() -> None:
    raw = (
        b"* 1 FETCH (UID 4 FLAGS (\\Seen $Label 1234) MODSEQ (12) "
        b"X-GUID 1795641962.M554185P8693.vm,S=17,W=19)\r\n"
    )
    meta = parse_fetch(one(raw))
    assert meta is not None
    assert meta.uid == 4 and meta.modseq == 12
    assert meta.flags == ("\\Seen", "$Label", "1234")
    assert meta.object_id == "1795641962.M554185P8693.vm,S=17,W=19"
    assert meta.thread_object_id is None and meta.raw == {}


def test_parse_fetch_objectid_with_extras_and_literal() -> None:
    raw = (
        b"* 3 FETCH (UID 9 FLAGS () EMAILID (M6d99) THREADID (T64b4) RFC822.SIZE 2231 "
        b'INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
        b"BODY[HEADER.FIELDS (MESSAGE-ID)] {29}\r\nMessage-ID: <a@b.example>\r\n\r\n)\r\n"
    )
    meta = parse_fetch(one(raw))
    assert meta is not None
    assert (meta.uid, meta.flags, meta.modseq) == (9, (), None)
    assert (meta.object_id, meta.thread_object_id) == ("M6d99", "T64b4")
    assert meta.raw["RFC822.SIZE"] == 2231
    assert meta.raw["BODY[HEADER.FIELDS (MESSAGE-ID)]"] == b"Message-ID: <a@b.example>\r\n\r\n"
    when = meta.raw["INTERNALDATE"]
    assert isinstance(when, datetime.datetime)
    assert (
        when.timestamp()
        == datetime.datetime(1996, 7, 17, 9, 44, 25, tzinfo=datetime.UTC).timestamp()
    )


def test_parse_fetch_gmail_and_threadid_nil() -> None:
    gmail = parse_fetch(
        one(
            b"* 1 FETCH (UID 1 FLAGS () X-GM-MSGID 1278455344230334865 "
            b"X-GM-THRID 1266894439832287888)\r\n"
        )
    )
    assert gmail is not None
    assert (gmail.object_id, gmail.thread_object_id) == (
        "1278455344230334865",
        "1266894439832287888",
    )
    nil = parse_fetch(one(b"* 1 FETCH (UID 1 FLAGS () EMAILID (M1) THREADID NIL)\r\n"))
    assert nil is not None and nil.thread_object_id is None


def test_parse_fetch_without_uid_is_unsolicited() -> None:
    assert parse_fetch(one(b"* 3 FETCH (FLAGS (\\Seen))\r\n")) is None


def test_collect_fetches_merges_a_later_flag_update() -> None:
    responses = read_untagged(
        b"* 1 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (3) RFC822.SIZE 10)\r\n"
        b"* 1 FETCH (UID 5 FLAGS () MODSEQ (4))\r\n"
        b"* 2 FETCH (FLAGS (\\Flagged))\r\n"
        b"* 4 EXISTS\r\n"
    )
    messages = collect_fetches(responses)
    assert list(messages) == [5]
    assert messages[5].flags == () and messages[5].modseq == 4
    assert messages[5].raw == {"RFC822.SIZE": 10}


def test_parse_fetch_rejects_garbage() -> None:
    with pytest.raises(UpstreamUnavailable):
        parse_fetch(one(b"* 1 FETCH (UID)\r\n"))


# -- SELECT -------------------------------------------------------------------------------


def test_select_result_with_qresync() -> None:
    untagged = read_untagged(
        b"* OK [CLOSED] Previous mailbox closed.\r\n"
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Seen \\*)] Flags permitted.\r\n"
        b"* 4 EXISTS\r\n"
        b"* 0 RECENT\r\n"
        b"* OK [UIDVALIDITY 1795641964] UIDs valid\r\n"
        b"* OK [UIDNEXT 6] Predicted next UID\r\n"
        b"* OK [HIGHESTMODSEQ 10] Highest\r\n"
        b"* VANISHED (EARLIER) 1,3:4\r\n"
        b"* 2 FETCH (UID 2 FLAGS (\\Seen $Label) MODSEQ (8))\r\n"
    )
    reply = Reply("SELECT", "OK", "READ-WRITE", None, "Select completed", tuple(untagged))
    result = select_result("INBOX", reply, readonly=True)
    assert result.uidvalidity == 1795641964 and result.uidnext == 6 and result.exists == 4
    assert result.highestmodseq == 10 and result.readonly is False
    assert result.permanent_flags == frozenset({"\\Answered", "\\Seen", "\\*"})
    assert result.vanished == frozenset({1, 3, 4})
    assert list(result.changed) == [2] and result.changed[2].flags == ("\\Seen", "$Label")


def test_select_result_nomodseq_and_read_only() -> None:
    untagged = read_untagged(
        b"* 0 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n* OK [UIDNEXT 1] x\r\n* OK [NOMODSEQ] x\r\n"
    )
    reply = Reply("SELECT", "OK", "READ-ONLY", None, "", tuple(untagged))
    result = select_result("Archive", reply, readonly=False)
    assert result.highestmodseq is None and result.readonly is True and result.exists == 0


# -- the rest -----------------------------------------------------------------------------


def test_parse_capabilities() -> None:
    assert parse_capabilities(b"IMAP4rev1 literal+ AUTH=PLAIN") == frozenset(
        {"IMAP4REV1", "LITERAL+", "AUTH=PLAIN"}
    )


@pytest.mark.parametrize(
    ("raw", "delimiter"),
    [
        (b'* NAMESPACE (("" "/")) NIL NIL\r\n', "/"),
        (b'* NAMESPACE (("INBOX." ".")) (("user." ".")) NIL\r\n', "."),
        (b'* NAMESPACE (("" NIL)) NIL NIL\r\n', None),
        (b"* NAMESPACE NIL NIL NIL\r\n", None),
    ],
)
def test_parse_namespace_delimiter(raw: bytes, delimiter: str | None) -> None:
    assert parse_namespace_delimiter(one(raw)) == delimiter


def test_parse_id() -> None:
    assert parse_id(one(b'* ID ("name" "Dovecot" "version" NIL)\r\n')) == {"name": "Dovecot"}
    assert parse_id(one(b"* ID NIL\r\n")) == {}


def test_parse_myrights() -> None:
    assert parse_myrights(one(b'* MYRIGHTS "Sent Items" lrswipkxtecda\r\n')) == (
        "Sent Items",
        "lrswipkxtecda",
    )


def test_ordered_sequence_keeps_the_sort_order() -> None:
    from bridge.imap.responses import ordered_sequence

    assert ordered_sequence(b"9,7:5,1") == [9, 7, 6, 5, 1]
    assert ordered_sequence(b"3:4") == [3, 4]
    assert ordered_sequence("12") == [12]


def test_fast_list_and_status_agree_with_the_general_parser() -> None:
    from bridge.imap import responses
    from bridge.imap.wire import Untagged

    lists = [b'(\\HasNoChildren \\Sent) "/" Sent', b'() "/" INBOX', b"() NIL foo",
             b'(\\Noselect) "." "Work \\"x\\" \\\\ y"', b'(\\HasNoChildren) "/" &AOk-t&AOk-',
             b'() "/" 123']  # fmt: skip
    for line in lists:
        fast = responses._fast_list(Untagged("LIST", None, (line,)))
        parts = responses.parse_response([line])
        assert fast is not None
        assert fast.name == responses._mailbox(parts[2])
        assert fast.attributes == frozenset(responses._text(a).lower() for a in parts[0])
    statuses = [b"INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3 UNSEEN 1 HIGHESTMODSEQ 2 "
                b"X-GUID c3518a0fe54f076bb916000083ecc375)", b'"A \\"b\\"" (MESSAGES 0)',
                b"42 (UIDNEXT 7)"]  # fmt: skip
    for line in statuses:
        fast = responses._fast_status(Untagged("STATUS", None, (line,)))
        parts = responses.parse_response([line])
        items = {responses._text(parts[1][i]).upper(): parts[1][i + 1]
                 for i in range(0, len(parts[1]), 2)}  # fmt: skip
        assert fast == (responses._mailbox(parts[0]), responses.status_from_items(items))
    # Shapes the fast path does not take still parse.
    assert responses._fast_status(Untagged("STATUS", None, (b"x (MAILBOXID (F1))",))) is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (b"38505 304,319:320 3956:3958", [3956, 3957, 3958]),
        (b"1 7 12", [12]),
        (b"1 7", []),
        (b"1 7 x:y", []),
        (None, []),
    ],
)
def test_copied_uids_are_the_destination_set_of_copyuid(
    args: bytes | None, expected: list[int]
) -> None:
    assert copied_uids(args) == expected


def test_sequence_set_covers() -> None:
    covers = sequence_set_covers("1:3,7,12:9,20:*")
    assert [n for n in range(1, 25) if covers(n)] == [1, 2, 3, 7, 9, 10, 11, 12, 20, 21, 22, 23, 24]
    assert sequence_set_covers("*")(1) and sequence_set_covers("*")(10**9)
    assert not sequence_set_covers("1:100,50:60,200")(150)
