from __future__ import annotations

import pytest

from bridge.imap.flags import (
    flag_to_keyword,
    flags_to_keywords,
    is_deleted,
    keyword_to_flag,
    keywords_to_flags,
)


@pytest.mark.parametrize(
    ("flag", "keyword"),
    [
        ("\\Seen", "$seen"),
        ("\\SEEN", "$seen"),
        ("\\Flagged", "$flagged"),
        ("\\Answered", "$answered"),
        ("\\Draft", "$draft"),
        ("\\Deleted", None),
        ("\\Recent", None),
        ("\\Unknown", None),
        ("$Forwarded", "$forwarded"),
        ("$Junk", "$junk"),
        ("$NotJunk", "$notjunk"),
        ("$Phishing", "$phishing"),
        ("$MDNSent", "$mdnsent"),
        ("NonJunk", "nonjunk"),
        ("Work", "work"),
    ],
)
def test_flag_to_keyword(flag: str, keyword: str | None) -> None:
    assert flag_to_keyword(flag) == keyword


def test_flags_to_keywords_drops_deleted_and_recent_and_merges_case() -> None:
    flags = ("\\Seen", "\\Recent", "\\Deleted", "$Label", "$label", "\\Flagged")
    assert flags_to_keywords(flags) == frozenset({"$seen", "$flagged", "$label"})
    assert flags_to_keywords(()) == frozenset()


def test_deleted_is_reported_separately() -> None:
    assert is_deleted(("\\Seen", "\\deleted"))
    assert not is_deleted(("\\Seen", "$deleted"))


@pytest.mark.parametrize(
    ("keyword", "flag"),
    [
        ("$seen", "\\Seen"),
        ("$SEEN", "\\Seen"),
        ("$flagged", "\\Flagged"),
        ("$answered", "\\Answered"),
        ("$draft", "\\Draft"),
        ("$forwarded", "$forwarded"),
        ("$junk", "$junk"),
        ("$notjunk", "$notjunk"),
        ("$phishing", "$phishing"),
        ("Work", "work"),
    ],
)
def test_keyword_to_flag(keyword: str, flag: str) -> None:
    assert keyword_to_flag(keyword) == flag


@pytest.mark.parametrize(
    "keyword",
    ["", "two words", "\\Seen", "\\Deleted", "a(b", "x]", 'q"', "star*", "crlf\r\nA1 LOGOUT"],
)
def test_keyword_to_flag_rejects(keyword: str) -> None:
    with pytest.raises(ValueError):
        keyword_to_flag(keyword)


def test_round_trip_of_every_mapped_keyword() -> None:
    keywords = {"$seen", "$flagged", "$answered", "$draft", "$forwarded", "custom"}
    assert flags_to_keywords(keywords_to_flags(keywords)) == keywords
