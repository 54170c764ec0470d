"""bridge.imap.search: JMAP Email filters and sorts -> IMAP SEARCH / SORT, on bytes.

Besides the tables, a model check: random filters are planned, the criteria run through a
small IMAP SEARCH interpreter (written here, from RFC 3501) over random messages, the
post-filter applied, and the result compared with the filter evaluated directly.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bridge.imap.search import (
    MAX_DEPTH,
    NOTHING,
    HasAttachment,
    InvalidFilter,
    InvalidSort,
    KeywordIs,
    ReceivedBefore,
    ReceivedSince,
    SearchPlan,
    SortKey,
    ThreadKeyword,
    UnsupportedFilter,
    UnsupportedSort,
    parse_filter,
    plan_search,
    plan_sort,
    tokens,
)
from bridge.imap.wire import split_literals

CAPS = frozenset({"IMAP4REV1", "SORT", "SORT=DISPLAY", "ESEARCH", "WITHIN", "LITERAL+"})


def plan(filter: Any) -> SearchPlan:
    return plan_search(filter, capabilities=CAPS)


def criteria(filter: Any) -> bytes:
    return plan(filter).criteria


def OR(*conditions: Any) -> dict[str, Any]:
    return {"operator": "OR", "conditions": list(conditions)}


def AND(*conditions: Any) -> dict[str, Any]:
    return {"operator": "AND", "conditions": list(conditions)}


def NOT(*conditions: Any) -> dict[str, Any]:
    return {"operator": "NOT", "conditions": list(conditions)}


# -- each condition ----------------------------------------------------------------------

D = "2026-03-10T15:30:00Z"


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (None, b"ALL"),
        ({}, b"ALL"),
        ({"text": "hello"}, b'TEXT "hello"'),
        ({"from": "alice"}, b'FROM "alice"'),
        ({"to": "bob@example.com"}, b'TO "bob@example.com"'),
        ({"cc": "carol"}, b'CC "carol"'),
        ({"bcc": "dave"}, b'BCC "dave"'),
        ({"subject": "hi"}, b'SUBJECT "hi"'),
        ({"body": "lunch"}, b'BODY "lunch"'),
        ({"header": ["X-Spam"]}, b'HEADER "X-Spam" ""'),
        ({"header": ["List-Id", "dev.example"]}, b'HEADER "List-Id" "dev.example"'),
        ({"header": ["List-Id", "dev", "contains"]}, b'HEADER "List-Id" "dev"'),
        ({"header": ["List-Id", "  "]}, b'HEADER "List-Id" ""'),
        ({"header": ["X-[odd]", "v"]}, b'HEADER "X-[odd]" "v"'),
        ({"hasKeyword": "$seen"}, b"SEEN"),
        ({"hasKeyword": "$flagged"}, b"FLAGGED"),
        ({"hasKeyword": "$answered"}, b"ANSWERED"),
        ({"hasKeyword": "$draft"}, b"DRAFT"),
        ({"hasKeyword": "$Seen"}, b"SEEN"),
        ({"hasKeyword": "$label1"}, b"KEYWORD $label1"),
        ({"hasKeyword": "NonJunk"}, b"KEYWORD nonjunk"),
        ({"notKeyword": "$seen"}, b"UNSEEN"),
        ({"notKeyword": "$flagged"}, b"UNFLAGGED"),
        ({"notKeyword": "$answered"}, b"UNANSWERED"),
        ({"notKeyword": "$draft"}, b"UNDRAFT"),
        ({"notKeyword": "$junk"}, b"UNKEYWORD $junk"),
        ({"hasKeyword": "$deleted"}, b"KEYWORD $deleted"),  # no keyword is \Deleted
        ({"minSize": 1}, b"LARGER 0"),
        ({"minSize": 1000}, b"LARGER 999"),
        ({"maxSize": 1000}, b"SMALLER 1000"),
        ({"minSize": 0}, b"ALL"),
        ({"maxSize": 2**40}, b"ALL"),
        ({"minSize": 2**32 - 1}, b"LARGER 4294967294"),
        ({"maxSize": 2**32 - 1}, b"SMALLER 4294967295"),
        ({"after": D}, b"SINCE 9-Mar-2026"),
        ({"before": D}, b"BEFORE 12-Mar-2026"),
        ({"after": "2026-01-01T00:00:00Z"}, b"SINCE 31-Dec-2025"),
        ({"before": "2025-12-31T23:59:59Z"}, b"BEFORE 2-Jan-2026"),
        ({"after": "2024-03-01T00:00:00.5Z"}, b"SINCE 29-Feb-2024"),
        ({"after": "0001-01-01T00:00:00Z"}, b"ALL"),  # no day before: the post-filter decides
        ({"before": "9999-12-31T00:00:00Z"}, b"ALL"),
        # Cache-only conditions send nothing.
        ({"hasAttachment": True}, b"ALL"),
        ({"allInThreadHaveKeyword": "$seen"}, b"ALL"),
        ({"someInThreadHaveKeyword": "$flagged"}, b"ALL"),
        ({"noneInThreadHaveKeyword": "$seen"}, b"ALL"),
        ({"inMailbox": "m1"}, b"ALL"),
        ({"inMailboxOtherThan": ["trash"]}, b"ALL"),
        ({"inMailboxOtherThan": []}, b"ALL"),
        # Null counts as absent.
        ({"from": None, "subject": "x"}, b'SUBJECT "x"'),
        # Several properties are ANDed, in the order given.
        (
            {"from": "alice", "subject": "hi", "after": "2026-01-02T00:00:00Z"},
            b'FROM "alice" SUBJECT "hi" SINCE 1-Jan-2026',
        ),
    ],
)
def test_condition(filter: Any, expected: bytes) -> None:
    assert criteria(filter) == expected


# -- text tokens -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", ["hello"]),
        ("  hello   world ", ["hello", "world"]),
        ('"hello world"', ["hello world"]),
        ("'hello world' again", ["hello world", "again"]),
        ('a "b c" d', ["a", "b c", "d"]),
        (r'"say \"hi\" \\ now"', ['say "hi" \\ now']),
        (r"'it\'s'", ["it's"]),
        ("don't stop", ["don't", "stop"]),
        ('"unclosed phrase', ['"unclosed', "phrase"]),
        ('""', []),
        ('"  "', []),
        ("", []),
        ("\t\r\n", []),
        ('x"y z"', ['x"y', 'z"']),
        ("a\r\nA1 DELETE INBOX", ["a", "A1", "DELETE", "INBOX"]),
    ],
)
def test_tokens(text: str, expected: list[str]) -> None:
    assert tokens(text) == expected


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"text": "meeting notes"}, b'TEXT "meeting" TEXT "notes"'),
        ({"subject": '"quarterly report" 2026'}, b'SUBJECT "quarterly report" SUBJECT "2026"'),
        ({"header": ["Subject", "a b"]}, b'HEADER "Subject" "a" HEADER "Subject" "b"'),
        ({"text": ""}, b"ALL"),
        ({"text": "   "}, b"ALL"),
        ({"text": 'say "hi"'}, b'TEXT "say" TEXT "hi"'),
        ({"text": r"back\slash"}, b'TEXT "back\\\\slash"'),
        ({"from": 'x" OR ALL "'}, b'FROM "x\\"" FROM "OR" FROM "ALL" FROM "\\""'),
        ({"text": "x" * 2000}, b"TEXT {2000}\r\n" + b"x" * 2000),
    ],
)
def test_text_tokens_on_the_wire(filter: Any, expected: bytes) -> None:
    assert criteria(filter) == expected


# -- operators ---------------------------------------------------------------------------

A, B, C, E, F = ({"from": x} for x in "abcef")


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (AND(A, B), b'FROM "a" FROM "b"'),
        (AND(A), b'FROM "a"'),
        (AND(), b"ALL"),
        (NOT(), b"ALL"),
        (OR(A), b'FROM "a"'),
        (OR(A, B), b'OR FROM "a" FROM "b"'),
        (OR(A, B, C), b'OR OR FROM "a" FROM "b" FROM "c"'),
        (OR(A, B, C, E), b'OR OR FROM "a" FROM "b" OR FROM "c" FROM "e"'),
        (OR(A, B, C, E, F), b'OR OR OR FROM "a" FROM "b" FROM "c" OR FROM "e" FROM "f"'),
        (OR(AND(A, B), C), b'OR (FROM "a" FROM "b") FROM "c"'),
        (OR({"from": "a", "to": "b"}, C), b'OR (FROM "a" TO "b") FROM "c"'),
        (OR({"text": "x y"}, C), b'OR (TEXT "x" TEXT "y") FROM "c"'),
        (NOT(A), b'NOT FROM "a"'),
        # NOT of several: none of them matches (NOT a NOT b is NOT (OR a b)).
        (NOT(A, B), b'NOT FROM "a" NOT FROM "b"'),
        (NOT(AND(A, B)), b'OR NOT FROM "a" NOT FROM "b"'),
        (NOT({"from": "a", "to": "b"}), b'OR NOT FROM "a" NOT TO "b"'),
        (NOT(NOT(A)), b'FROM "a"'),
        (NOT(OR(A, AND(B, C))), b'NOT FROM "a" OR NOT FROM "b" NOT FROM "c"'),
        (NOT({"hasKeyword": "$seen"}), b"UNSEEN"),
        (NOT({"notKeyword": "$label"}), b"KEYWORD $label"),
        (NOT({"minSize": 10}), b"SMALLER 10"),
        (NOT({"maxSize": 10}), b"LARGER 9"),
        (NOT({"after": D}), b"BEFORE 12-Mar-2026"),
        (NOT({"before": D}), b"SINCE 9-Mar-2026"),
        (NOT({"header": ["X-Spam"]}), b'NOT HEADER "X-Spam" ""'),
        (AND(A, AND(B, AND(C))), b'FROM "a" FROM "b" FROM "c"'),
        (OR(A, OR(B, C)), b'OR OR FROM "a" FROM "b" FROM "c"'),
        # Constants fold away.
        (OR(A, {}), b"ALL"),
        (AND(A, {}), b'FROM "a"'),
        (AND(A, OR()), b"NOT ALL"),
        (OR(A, OR()), b'FROM "a"'),
        (OR(A, {"maxSize": 0}), b'FROM "a"'),
        (NOT({}), b"NOT ALL"),
        (NOT(OR()), b"ALL"),
        # Superset in IMAP, exact in the post-filter.
        (OR({"after": D}, {"hasKeyword": "$flagged"}), b"OR SINCE 9-Mar-2026 FLAGGED"),
        (OR({"after": D}, {"hasAttachment": True}), b"ALL"),
        (OR({"hasKeyword": "a"}, {"inMailbox": "m"}), b"ALL"),
        (
            OR({"after": D, "minSize": 5}, {"before": D}),
            b"OR (SINCE 9-Mar-2026 LARGER 4) BEFORE 12-Mar-2026",
        ),
    ],
)
def test_operators(filter: Any, expected: bytes) -> None:
    assert criteria(filter) == expected


@pytest.mark.parametrize(
    "filter",
    [
        OR(),
        AND(A, OR()),
        NOT({}),
        {"maxSize": 0},
        {"minSize": 2**33},
        AND({"inMailbox": "m"}, NOT({"inMailbox": "m"})),
    ],
)
def test_matches_nothing(filter: Any) -> None:
    result = plan(filter)
    assert result == NOTHING
    assert result.matches_nothing and result.criteria == b"NOT ALL"
    assert result.mailbox_ids == frozenset() and not result.matches(Email())


def test_many_ors_nest_shallowly() -> None:
    result = criteria(OR(*({"subject": str(n)} for n in range(1000))))
    assert result.count(b"OR ") == 999
    assert result.count(b'SUBJECT "') == 1000
    # A balanced fold: the longest run of ORs (the nesting depth on the left) is log2(n).
    assert max(len(run) for run in re.findall(rb"(?:OR )+", result)) // 3 == 10


def test_depth_limit() -> None:
    filter: dict[str, Any] = {"from": "a"}
    for _ in range(MAX_DEPTH):
        filter = NOT(filter)
    assert criteria(filter) == b'FROM "a"'
    with pytest.raises(UnsupportedFilter):
        plan(NOT(filter))


# -- injection, literals, charset --------------------------------------------------------

INJECTIONS = [
    "a\r\nA1 DELETE INBOX",
    '"a\r\nA1 DELETE INBOX"',
    "'\r\nA1 LOGOUT\r\n'",
    '" ) ALL (',
    '\\" ALL',
    "{5}\r\nhello",
    '"{5}\r\nhello"',
    '"x\ny"',
    '"\r"',
    "\u2028\u0085 x",
]


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("prop", ["text", "from", "subject", "body", "header"])
def test_injection_stays_inside_arguments(value: str, prop: str) -> None:
    filter = {"header": ["X-Test", value]} if prop == "header" else {prop: value}
    for wrapped in (filter, NOT(filter), OR(filter, {"subject": "z"})):
        command = plan(wrapped).search_command()
        parts = split_literals(command)  # raises on CR/LF outside a literal
        # Outside quoted strings and literals, only our own keys and markers remain.
        text = b"".join(head for head, _ in parts)
        bare = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", text)
        assert not re.search(rb"A1|DELETE|LOGOUT|hello", bare), text
        assert bare.count(b"(") == bare.count(b")")


def test_crlf_phrase_travels_in_a_literal() -> None:
    result = plan({"text": '"a\r\nA1 DELETE INBOX"'})
    assert result.criteria == b"TEXT {18}\r\na\r\nA1 DELETE INBOX"
    assert not result.needs_utf8
    assert split_literals(result.search_command()) == [
        (b"UID SEARCH TEXT {18}", b"a\r\nA1 DELETE INBOX"),
        (b"", None),
    ]


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"subject": "café"}, b"SUBJECT {5}\r\ncaf\xc3\xa9"),
        ({"from": "Jörg"}, b"FROM {5}\r\nJ\xc3\xb6rg"),
        ({"text": "日本"}, b"TEXT {6}\r\n\xe6\x97\xa5\xe6\x9c\xac"),
        ({"header": ["X-Name", "ü"]}, b'HEADER "X-Name" {2}\r\n\xc3\xbc'),
        (OR({"subject": "é"}, {"from": "a"}), b'OR SUBJECT {2}\r\n\xc3\xa9 FROM "a"'),
    ],
)
def test_non_ascii_needs_charset(filter: Any, expected: bytes) -> None:
    result = plan(filter)
    assert result.criteria == expected
    assert result.needs_utf8
    assert result.search_command() == b"UID SEARCH CHARSET UTF-8 " + expected
    assert result.search_command(return_options=b"RETURN (ALL)") == (
        b"UID SEARCH RETURN (ALL) CHARSET UTF-8 " + expected
    )


def test_ascii_needs_no_charset() -> None:
    result = plan({"subject": "tab\there"})
    assert result.criteria == b'SUBJECT "tab" SUBJECT "here"'
    result = plan({"subject": '"tab\there"'})
    assert result.criteria == b"SUBJECT {8}\r\ntab\there" and not result.needs_utf8
    assert result.search_command() == b"UID SEARCH SUBJECT {8}\r\ntab\there"


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filter",
    [
        [],
        "from:alice",
        {"operator": "AND"},
        {"operator": "AND", "conditions": {"from": "a"}},
        {"operator": 1, "conditions": []},
        {"conditions": []},
        {"operator": "AND", "conditions": [], "from": "a"},
        {"operator": "AND", "conditions": ["from"]},
        {"inMailbox": 5},
        {"inMailbox": ""},
        {"inMailbox": "bad id"},
        {"inMailboxOtherThan": "m1"},
        {"inMailboxOtherThan": ["m1", 2]},
        {"before": "2026-01-01"},
        {"before": "2026-01-01T00:00:00+01:00"},
        {"before": "2026-01-01t00:00:00z"},
        {"before": "2026-02-30T00:00:00Z"},
        {"after": "2026-01-01T24:00:00Z"},
        {"after": "0000-01-01T00:00:00Z"},
        {"after": 1767225600},
        {"minSize": -1},
        {"minSize": 1.5},
        {"minSize": "10"},
        {"maxSize": True},
        {"maxSize": 2**53},
        {"hasKeyword": ""},
        {"hasKeyword": "two words"},
        {"hasKeyword": "\\Seen"},
        {"hasKeyword": "a(b"},
        {"hasKeyword": "x]"},
        {"notKeyword": "caf\u00e9"},
        {"notKeyword": "a\r\nA1 DELETE INBOX"},
        {"hasKeyword": "k" * 256},
        {"hasKeyword": 7},
        {"allInThreadHaveKeyword": "a b"},
        {"someInThreadHaveKeyword": 3},
        {"noneInThreadHaveKeyword": "%"},
        {"hasAttachment": "yes"},
        {"hasAttachment": 1},
        {"text": 42},
        {"from": ["alice"]},
        {"subject": "\udcff"},
        {"header": "Subject"},
        {"header": []},
        {"header": ["A", "b", "contains", "d"]},
        {"header": ["Subject", 1]},
        {"header": [""]},
        {"header": ["Bad Name", "x"]},
        {"header": ["Bad:Name"]},
        {"header": ["Süße"]},
        {"header": ["X\r\nA1 DELETE INBOX"]},
        NOT({"from": 1}),
        OR({"from": "a"}, {"minSize": -5}),
    ],
)
def test_invalid(filter: Any) -> None:
    with pytest.raises(InvalidFilter):
        plan(filter)


@pytest.mark.parametrize(
    "filter",
    [
        {"unknownProperty": 1},
        {"from": "a", "fromContactGroupId": "g"},
        {"operator": "XOR", "conditions": []},
        {"header": ["Subject", "x", "equals"]},
        {"header": ["Subject", "x", "startsWith"]},
        {"text": "nul\x00"},
        {"header": ["X", "a\x00"]},
        # Text under OR/NOT with conditions only the cache can decide.
        OR({"from": "a"}, {"after": D}),
        OR({"from": "a"}, {"inMailbox": "m1"}),
        OR({"from": "a"}, {"hasAttachment": True}),
        OR({"from": "a"}, {"someInThreadHaveKeyword": "$flagged"}),
        NOT({"body": "x", "before": D}),
        NOT({"body": "x", "inMailboxOtherThan": ["t"]}),
        AND({"inMailbox": "m1"}, OR({"subject": "x"}, {"hasAttachment": False})),
    ],
)
def test_unsupported(filter: Any) -> None:
    with pytest.raises(UnsupportedFilter):
        plan(filter)


def test_invalid_is_reported_before_the_tree_is_judged() -> None:
    with pytest.raises(InvalidFilter):
        plan(OR({"from": "a"}, {"after": D}, {"minSize": "x"}))


# -- the post-filter ---------------------------------------------------------------------


@dataclass
class Email:
    received_at: datetime = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
    size: int = 1000
    keywords: frozenset[str] = frozenset()
    mailbox_ids: frozenset[str] = frozenset({"inbox"})
    has_attachment: bool = False
    thread_keywords: tuple[frozenset[str], ...] = field(default=())


AT = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("filter", "email", "expected"),
    [
        ({"after": D}, Email(received_at=AT), True),
        ({"after": D}, Email(received_at=AT - SECOND), False),
        ({"before": D}, Email(received_at=AT), False),
        ({"before": D}, Email(received_at=AT - SECOND), True),
        ({"after": "2026-03-10T15:29:59.5Z"}, Email(received_at=AT - SECOND), False),
        (NOT({"after": D}), Email(received_at=AT - SECOND), True),
        (NOT({"after": D}), Email(received_at=AT), False),
        ({"minSize": 1000}, Email(size=1000), True),
        ({"minSize": 1001}, Email(size=1000), False),
        ({"maxSize": 1000}, Email(size=1000), False),
        ({"maxSize": 1001}, Email(size=1000), True),
        ({"hasKeyword": "$Seen"}, Email(keywords=frozenset({"$seen"})), True),
        ({"notKeyword": "$seen"}, Email(keywords=frozenset({"$seen"})), False),
        ({"hasAttachment": True}, Email(has_attachment=True), True),
        ({"hasAttachment": False}, Email(has_attachment=True), False),
        (NOT({"hasAttachment": True}), Email(has_attachment=False), True),
        ({"inMailbox": "inbox"}, Email(), True),
        ({"inMailbox": "trash"}, Email(), False),
        (NOT({"inMailbox": "trash"}), Email(), True),
        ({"inMailboxOtherThan": ["trash"]}, Email(mailbox_ids=frozenset({"trash"})), False),
        (
            {"inMailboxOtherThan": ["trash"]},
            Email(mailbox_ids=frozenset({"trash", "inbox"})),
            True,
        ),
        (NOT({"inMailboxOtherThan": ["trash"]}), Email(mailbox_ids=frozenset({"trash"})), True),
        (OR({"after": D}, {"hasAttachment": True}), Email(received_at=AT - SECOND), False),
        (OR({"after": D}, {"hasAttachment": True}), Email(has_attachment=True), True),
    ],
)
def test_post_filter(filter: Any, email: Email, expected: bool) -> None:
    result = plan(filter)
    assert not result.needs_imap
    assert result.matches(email) is expected


S, F_, N = frozenset({"$seen"}), frozenset({"$flagged"}), frozenset()


@pytest.mark.parametrize(
    ("condition", "thread", "expected"),
    [
        ({"allInThreadHaveKeyword": "$seen"}, (S, S), True),
        ({"allInThreadHaveKeyword": "$seen"}, (S, N), False),
        ({"someInThreadHaveKeyword": "$flagged"}, (N, F_), True),
        ({"someInThreadHaveKeyword": "$flagged"}, (N, S), False),
        ({"noneInThreadHaveKeyword": "$flagged"}, (N, S), True),
        ({"noneInThreadHaveKeyword": "$flagged"}, (F_, S), False),
        (NOT({"allInThreadHaveKeyword": "$seen"}), (S, N), True),
        (NOT({"allInThreadHaveKeyword": "$seen"}), (S, S), False),
        (NOT({"someInThreadHaveKeyword": "$seen"}), (N, N), True),
        (NOT({"noneInThreadHaveKeyword": "$seen"}), (N, S), True),
    ],
)
def test_thread_keyword_conditions(condition: Any, thread: Any, expected: bool) -> None:
    result = plan(AND({"subject": "x"}, condition))
    assert result.criteria == b'SUBJECT "x"' and result.needs_imap
    (leaf,) = result.thread_keyword_conditions
    assert isinstance(leaf, ThreadKeyword)
    assert result.matches(Email(thread_keywords=thread)) is expected
    assert leaf.matches_thread(thread) is expected


def test_thread_keyword_negations_stay_exact() -> None:
    assert parse_filter(NOT({"allInThreadHaveKeyword": "$Seen"})) == ThreadKeyword(
        "$seen", "not_all"
    )
    assert parse_filter(NOT({"someInThreadHaveKeyword": "k"})) == ThreadKeyword("k", "none")
    assert parse_filter(NOT({"noneInThreadHaveKeyword": "k"})) == ThreadKeyword("k", "some")


def test_plan_shape_for_a_typical_query() -> None:
    result = plan(
        {
            "inMailbox": "inbox",
            "text": "invoice",
            "after": "2026-01-01T08:00:00Z",
            "notKeyword": "$seen",
            "hasAttachment": True,
        }
    )
    assert result.criteria == b'TEXT "invoice" SINCE 31-Dec-2025 UNSEEN'
    assert result.needs_imap and not result.needs_utf8 and not result.matches_nothing
    assert result.mailbox_ids == frozenset({"inbox"})
    assert result.excluded_mailbox_ids == frozenset()
    assert result.needs_has_attachment and result.thread_keyword_conditions == ()
    after = datetime(2026, 1, 1, 8, tzinfo=UTC)
    leaves = set(result.post_filter.leaves())  # type: ignore[union-attr]
    assert ReceivedSince(after) in leaves and HasAttachment(True) in leaves
    assert KeywordIs("$seen", False) in leaves
    good = Email(received_at=after, has_attachment=True)
    assert result.matches(good)
    assert not result.matches(Email(received_at=after - SECOND, has_attachment=True))
    assert not result.matches(Email(received_at=after, has_attachment=False))
    assert ReceivedBefore(after).negate() == ReceivedSince(after)


def test_pure_imap_filter_has_no_post_filter() -> None:
    result = plan(OR({"from": "a"}, {"subject": "b"}))
    assert result.post_filter is None and result.needs_imap
    assert result.matches(Email())


# -- mailbox scope -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter", "mailbox_ids", "excluded"),
    [
        ({}, None, set()),
        ({"inMailbox": "a"}, {"a"}, set()),
        (OR({"inMailbox": "a"}, {"inMailbox": "b"}), {"a", "b"}, set()),
        (AND({"inMailbox": "a"}, {"inMailbox": "b"}), {"a"}, set()),
        (AND(OR({"inMailbox": "a"}, {"inMailbox": "b"}), {"inMailbox": "c"}), {"c"}, set()),
        (NOT({"inMailbox": "trash"}), None, {"trash"}),
        (NOT({"inMailbox": "trash"}, {"inMailbox": "junk"}), None, {"trash", "junk"}),
        ({"inMailboxOtherThan": ["trash", "junk"]}, None, {"trash", "junk"}),
        (
            AND({"inMailboxOtherThan": ["t"]}, {"inMailboxOtherThan": ["j", "k"]}),
            None,
            {"j", "k"},
        ),
        (AND({"inMailboxOtherThan": ["t"]}, NOT({"inMailbox": "x"})), None, {"t", "x"}),
        # The inMailbox folder may be inside X: it is searched, X is not skipped.
        ({"inMailbox": "t", "inMailboxOtherThan": ["t"]}, {"t"}, set()),
        (AND(OR({"inMailbox": "a"}, {"inMailbox": "b"}), NOT({"inMailbox": "b"})), {"a"}, {"b"}),
        # Under OR with other conditions: no scope, only the post-filter.
        (OR({"inMailbox": "a"}, {"hasKeyword": "$flagged"}), None, set()),
        (OR({"inMailbox": "a"}, NOT({"inMailbox": "b"})), None, set()),
        (NOT({"inMailboxOtherThan": ["a"]}), None, set()),
    ],
)
def test_scope(filter: Any, mailbox_ids: set[str] | None, excluded: set[str]) -> None:
    result = plan(filter)
    assert result.mailbox_ids == (None if mailbox_ids is None else frozenset(mailbox_ids))
    assert result.excluded_mailbox_ids == frozenset(excluded)


def test_mailbox_conditions_are_also_post_filtered() -> None:
    result = plan(AND({"inMailbox": "a"}, {"inMailbox": "b"}, {"from": "x"}))
    assert result.criteria == b'FROM "x"'
    assert result.matches(Email(mailbox_ids=frozenset({"a", "b"})))
    assert not result.matches(Email(mailbox_ids=frozenset({"a"})))


# -- the model check ---------------------------------------------------------------------

WORDS = ["alpha", "beta", "gamma", "delta"]
KEYWORDS = ["$seen", "$flagged", "$label"]
MAILBOXES = ["inbox", "archive", "trash"]
BASE = datetime(2026, 3, 10, tzinfo=UTC)


@dataclass
class Message:
    sender: str
    subject: str
    body: str
    list_id: str | None
    keywords: frozenset[str]
    size: int
    received_at: datetime
    has_attachment: bool
    mailbox_ids: frozenset[str]
    thread_keywords: tuple[frozenset[str], ...]


def random_message(rng: random.Random) -> Message:
    keywords = frozenset(k for k in KEYWORDS if rng.random() < 0.4)
    return Message(
        sender=rng.choice(WORDS) + "@example.com",
        subject=" ".join(rng.sample(WORDS, 2)),
        body=rng.choice(WORDS),
        list_id=rng.choice([None, "dev.example", "ops.example"]),
        keywords=keywords,
        size=rng.randrange(50, 150),
        received_at=BASE + timedelta(minutes=rng.randrange(-3 * 1440, 3 * 1440)),
        has_attachment=rng.random() < 0.5,
        mailbox_ids=frozenset(rng.sample(MAILBOXES, rng.choice([1, 1, 2]))),
        thread_keywords=(keywords, frozenset(k for k in KEYWORDS if rng.random() < 0.5)),
    )


def random_date(rng: random.Random) -> str:
    moment = BASE + timedelta(minutes=rng.randrange(-3 * 1440, 3 * 1440))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


CONDITION_MAKERS: dict[str, Callable[[random.Random], Any]] = {
    "text": lambda r: r.choice(WORDS),
    "from": lambda r: r.choice(WORDS),
    "subject": lambda r: " ".join(r.sample(WORDS, r.choice([1, 2]))),
    "body": lambda r: r.choice(WORDS),
    "header": lambda r: r.choice([["List-Id"], ["List-Id", "dev"], ["X-None"]]),
    "hasKeyword": lambda r: r.choice(KEYWORDS),
    "notKeyword": lambda r: r.choice(KEYWORDS),
    "minSize": lambda r: r.randrange(0, 160),
    "maxSize": lambda r: r.randrange(0, 160),
    "after": random_date,
    "before": random_date,
    "hasAttachment": lambda r: r.random() < 0.5,
    "inMailbox": lambda r: r.choice(MAILBOXES),
    "inMailboxOtherThan": lambda r: r.sample(MAILBOXES, r.randrange(0, 3)),
    "allInThreadHaveKeyword": lambda r: r.choice(KEYWORDS),
    "someInThreadHaveKeyword": lambda r: r.choice(KEYWORDS),
    "noneInThreadHaveKeyword": lambda r: r.choice(KEYWORDS),
}


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 3 and rng.random() < 0.45:
        operator = rng.choice(["AND", "OR", "NOT"])
        count = rng.choice([0, 1, 2, 2, 3])
        return {
            "operator": operator,
            "conditions": [random_filter(rng, depth + 1) for _ in range(count)],
        }
    names = rng.sample(sorted(CONDITION_MAKERS), rng.choice([0, 1, 1, 1, 2]))
    return {name: CONDITION_MAKERS[name](rng) for name in names}


def jmap_matches(filter: dict[str, Any], m: Message) -> bool:
    """The filter evaluated directly (RFC 8621 §4.4.1), the reference."""
    if "operator" in filter:
        results = [jmap_matches(c, m) for c in filter["conditions"]]
        return {"AND": all, "OR": any, "NOT": lambda r: not any(r)}[filter["operator"]](results)
    return all(jmap_condition(name, value, m) for name, value in filter.items())


def jmap_condition(name: str, value: Any, m: Message) -> bool:
    text = f"{m.sender} {m.subject} {m.body} {m.list_id or ''}"
    fields = {"text": text, "from": m.sender, "subject": m.subject, "body": m.body}
    if name in fields:
        return all(token in fields[name] for token in value.split())
    if name == "header":
        if value[0] != "List-Id" or m.list_id is None:
            return False
        return len(value) == 1 or value[1] in m.list_id
    if name == "hasKeyword":
        return value in m.keywords
    if name == "notKeyword":
        return value not in m.keywords
    if name == "minSize":
        return m.size >= value
    if name == "maxSize":
        return m.size < value
    if name in ("after", "before"):
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return m.received_at >= moment if name == "after" else m.received_at < moment
    if name == "hasAttachment":
        return m.has_attachment == value
    if name == "inMailbox":
        return value in m.mailbox_ids
    if name == "inMailboxOtherThan":
        return bool(m.mailbox_ids - set(value))
    has = [value in keywords for keywords in m.thread_keywords]
    if name == "allInThreadHaveKeyword":
        return all(has)
    if name == "someInThreadHaveKeyword":
        return any(has)
    assert name == "noneInThreadHaveKeyword"
    return not any(has)


def test_model_check() -> None:
    """Random filters: planned execution == direct evaluation, or UnsupportedFilter."""
    rng = random.Random(8621)
    messages = [random_message(rng) for _ in range(40)]
    supported = unsupported = 0
    for _ in range(3000):
        filter = random_filter(rng)
        try:
            result = plan(filter)
        except UnsupportedFilter:
            unsupported += 1
            continue
        supported += 1
        split_literals(result.search_command())
        zone = timedelta(minutes=rng.randrange(-23 * 60, 24 * 60))  # the server's time zone
        program = parse_criteria(result.criteria)
        folders = set(result.mailbox_ids if result.mailbox_ids is not None else MAILBOXES)
        folders -= result.excluded_mailbox_ids
        found = set()
        for number, m in enumerate(messages):
            if not m.mailbox_ids & folders:
                continue
            if result.needs_imap and not imap_matches(program, m, zone):
                continue
            if result.matches(m):  # type: ignore[arg-type]
                found.add(number)
        expected = {n for n, m in enumerate(messages) if jmap_matches(filter, m)}
        assert found == expected, (filter, result)
        # The IMAP criteria alone match a superset, in every folder searched.
        for number in expected:
            assert imap_matches(program, messages[number], zone), (filter, result.criteria)
    assert supported > 2000 and unsupported > 50


# A small interpreter for the IMAP SEARCH keys plan_search emits (RFC 3501 §6.4.4).

_TOKEN = re.compile(rb'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n|([^\s()"{]+))', re.S)


def parse_criteria(data: bytes) -> list[Any]:
    items: list[Any] = []
    stack: list[list[Any]] = [items]
    pos = 0
    while pos < len(data):
        match = _TOKEN.match(data, pos)
        assert match, data[pos:]
        pos = match.end()
        if match.group(1):
            stack.append([])
        elif match.group(2):
            group = stack.pop()
            stack[-1].append(group)
        elif match.group(3) is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", match.group(3)).decode())
        elif match.group(4):
            size = int(match.group(4))
            stack[-1].append(data[pos : pos + size].decode())
            pos += size
        else:
            stack[-1].append(match.group(5))
    assert len(stack) == 1
    return items


def imap_matches(program: list[Any], m: Message, zone: timedelta) -> bool:
    items = list(program)
    result = True
    while items:
        result = _key(items, m, zone) and result
    return result


def _key(items: list[Any], m: Message, zone: timedelta) -> bool:
    head = items.pop(0)
    if isinstance(head, list):
        return imap_matches(head, m, zone)
    key = head.upper()
    flags = {"SEEN": "$seen", "FLAGGED": "$flagged", "ANSWERED": "$answered", "DRAFT": "$draft"}
    local_day = (m.received_at + zone).date()
    if key == b"ALL":
        return True
    if key == b"NOT":
        return not _key(items, m, zone)
    if key == b"OR":
        left = _key(items, m, zone)
        return _key(items, m, zone) or left
    if key.decode() in flags:
        return flags[key.decode()] in m.keywords
    if key.startswith(b"UN") and key[2:].decode() in flags and key != b"UNKEYWORD":
        return flags[key[2:].decode()] not in m.keywords
    if key in (b"KEYWORD", b"UNKEYWORD"):
        return (items.pop(0).decode().lower() in m.keywords) == (key == b"KEYWORD")
    if key in (b"LARGER", b"SMALLER"):
        n = int(items.pop(0))
        return m.size > n if key == b"LARGER" else m.size < n
    if key in (b"SINCE", b"BEFORE"):
        day = datetime.strptime(items.pop(0).decode(), "%d-%b-%Y").date()
        return local_day >= day if key == b"SINCE" else local_day < day
    if key == b"HEADER":
        name, value = items.pop(0), items.pop(0)
        return name.lower() == "list-id" and m.list_id is not None and value in m.list_id
    value = items.pop(0)
    text = f"{m.sender} {m.subject} {m.body} {m.list_id or ''}"
    fields = {b"TEXT": text, b"FROM": m.sender, b"SUBJECT": m.subject, b"BODY": m.body}
    return value.lower() in fields[key].lower()


def test_interpreter_reads_literals_and_groups() -> None:
    program = parse_criteria(b'OR (FROM "a" SUBJECT {3}\r\nb c) NOT SINCE 1-Jan-2026')
    assert program == [b"OR", [b"FROM", "a", b"SUBJECT", "b c"], b"NOT", b"SINCE", b"1-Jan-2026"]
    assert date(2026, 1, 1) == datetime.strptime("1-Jan-2026", "%d-%b-%Y").date()


# -- commands ----------------------------------------------------------------------------


def test_sort_command() -> None:
    sort = plan_sort([{"property": "receivedAt", "isAscending": False}], CAPS)
    assert plan({"from": "a"}).sort_command(sort) == b'UID SORT (REVERSE ARRIVAL) US-ASCII FROM "a"'
    assert plan({"from": "é"}).sort_command(sort, return_options=b"RETURN (ALL)") == (
        b"UID SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 FROM {2}\r\n\xc3\xa9"
    )
    local = plan_sort([{"property": "hasKeyword", "keyword": "$flagged"}], CAPS)
    with pytest.raises(ValueError):
        plan({}).sort_command(local)


# -- sorting -----------------------------------------------------------------------------

NO_DISPLAY = frozenset({"SORT"})
I18N = frozenset({"SORT", "SORT=DISPLAY", "I18NLEVEL=1"})


@pytest.mark.parametrize(
    ("comparators", "caps", "expected"),
    [
        ([{"property": "receivedAt"}], CAPS, b"(ARRIVAL)"),
        ([{"property": "receivedAt", "isAscending": False}], CAPS, b"(REVERSE ARRIVAL)"),
        ([{"property": "sentAt"}], CAPS, b"(DATE)"),
        ([{"property": "size", "isAscending": True}], CAPS, b"(SIZE)"),
        ([{"property": "subject"}], CAPS, b"(SUBJECT)"),
        ([{"property": "from"}], CAPS, b"(DISPLAYFROM)"),
        ([{"property": "to", "isAscending": False}], CAPS, b"(REVERSE DISPLAYTO)"),
        (
            [
                {"property": "subject", "collation": "i;ascii-casemap"},
                {"property": "receivedAt", "isAscending": False, "keyword": "ignored"},
            ],
            CAPS,
            b"(SUBJECT REVERSE ARRIVAL)",
        ),
        ([{"property": "size", "collation": "i;whatever"}], CAPS, b"(SIZE)"),
        ([{"property": "subject", "collation": "i;unicode-casemap"}], I18N, b"(SUBJECT)"),
        ([{"property": "subject", "isAscending": None}], CAPS, b"(SUBJECT)"),
        # Local when the server cannot do it with JMAP's meaning.
        ([{"property": "from"}], NO_DISPLAY, None),
        ([{"property": "subject", "collation": "i;unicode-casemap"}], CAPS, None),
        ([{"property": "subject", "collation": "i;ascii-casemap"}], I18N, None),
        ([{"property": "subject", "collation": "i;ascii-numeric"}], CAPS, None),
        ([{"property": "receivedAt"}], frozenset(), None),
        ([{"property": "hasKeyword", "keyword": "$flagged"}], CAPS, None),
        ([], CAPS, None),
        (None, CAPS, None),
    ],
)
def test_sort_criteria(comparators: Any, caps: frozenset[str], expected: bytes | None) -> None:
    assert plan_sort(comparators, caps).criteria == expected


def test_sort_plan_tells_upstream_from_local() -> None:
    result = plan_sort(
        [
            {"property": "someInThreadHaveKeyword", "keyword": "$Flagged", "isAscending": False},
            {"property": "subject", "collation": "i;ascii-casemap"},
            {"property": "receivedAt", "isAscending": False},
        ],
        CAPS,
    )
    assert result.criteria is None
    assert result.keys == (
        SortKey("someInThreadHaveKeyword", False, "$flagged", None, None),
        SortKey("subject", True, None, "i;ascii-casemap", b"SUBJECT"),
        SortKey("receivedAt", False, None, None, b"REVERSE ARRIVAL"),
    )
    assert result.local_keys == result.keys[:1]
    assert result.keys[0].thread_level and not result.keys[1].thread_level
    assert (
        plan_sort([{"property": "allInThreadHaveKeyword", "keyword": "k"}], CAPS)
        .keys[0]
        .thread_level
    )


def test_sort_capabilities_are_case_insensitive() -> None:
    caps = frozenset({"sort", "sort=display"})
    assert plan_sort([{"property": "from"}], caps).criteria == b"(DISPLAYFROM)"


@pytest.mark.parametrize(
    "comparators",
    [
        {"property": "receivedAt"},
        ["receivedAt"],
        [{"isAscending": True}],
        [{"property": 5}],
        [{"property": None}],
        [{"property": "receivedAt", "isAscending": "no"}],
        [{"property": "receivedAt", "isAscending": 0}],
        [{"property": "subject", "collation": 1}],
        [{"property": "hasKeyword"}],
        [{"property": "hasKeyword", "keyword": ""}],
        [{"property": "someInThreadHaveKeyword", "keyword": "a b"}],
        [{"property": "allInThreadHaveKeyword", "keyword": 3}],
    ],
)
def test_sort_invalid(comparators: Any) -> None:
    with pytest.raises(InvalidSort):
        plan_sort(comparators, CAPS)


@pytest.mark.parametrize(
    "comparators",
    [
        [{"property": "cc"}],
        [{"property": "id"}],
        [{"property": "receivedat"}],
        [{"property": "subject", "collation": "i;octet"}],
        [{"property": "from", "collation": "en-u-co-phonebk"}],
    ],
)
def test_sort_unsupported(comparators: Any) -> None:
    with pytest.raises(UnsupportedSort):
        plan_sort(comparators, CAPS)
