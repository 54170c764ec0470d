"""JMAP text conditions -> Gmail queries for X-GM-RAW: which go, and how they are quoted."""

from __future__ import annotations

import pytest

from bridge.imap.gmail_search import gmail_query, raw_criteria


@pytest.mark.parametrize(
    ("name", "value", "query"),
    [
        ("from", "Ann Lee", 'from:"Ann" from:"Lee"'),
        ("from", '"Ann Lee"', 'from:"Ann Lee"'),
        ("cc", "carl@example.org", 'cc:"carl@example.org"'),
        ("bcc", "dee", 'bcc:"dee"'),
        ("subject", "plans  for\tmay", 'subject:"plans" subject:"for" subject:"may"'),
        ("text", "'tea time' biscuits", '"tea time" "biscuits"'),
        # Operators and Gmail's syntax in a client's text stay text.
        ("text", "is:starred", '"is:starred"'),
        ("text", "a OR b", '"a" "OR" "b"'),
        ("subject", "-draft {x y} (z)", 'subject:"-draft" subject:"{x" subject:"y}" subject:"(z)"'),
        ("from", 'label:work" OR "x', 'from:"label:work" from:"OR" from:"x"'),
        # A quote or backslash inside a JMAP phrase cannot end Gmail's phrase.
        ("subject", r'"say \"hi\" now"', 'subject:"say hi now"'),
        ("text", r'"back\\slash"', '"back slash"'),
        ("subject", "naïve café", 'subject:"naïve" subject:"café"'),
    ],
)  # fmt: skip
def test_conditions_gmail_answers_become_quoted_phrases(name: str, value: str, query: str) -> None:
    assert gmail_query(name, value) == query


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("to", "ann"),  # Gmail's to: matches Cc and Bcc as well
        ("body", "hello"),  # no operator for the body alone
        ("header", "x"),
        ("subject", ""),  # no token: plain SEARCH matches everything
        ("subject", "   "),
        ("text", "plans ---"),  # "---" holds nothing Gmail indexes
        ("subject", '"\\""'),
        ("from", "me"),  # Gmail's own address
        ("cc", "ME"),
    ],
)
def test_conditions_left_to_plain_search(name: str, value: str) -> None:
    assert gmail_query(name, value) is None
    assert raw_criteria(name, value) is None


def test_me_is_a_word_outside_the_address_operators() -> None:
    assert gmail_query("subject", "me") == 'subject:"me"'


def test_the_query_reaches_imap_as_a_quoted_string_or_a_literal() -> None:
    assert raw_criteria("from", "Ann") == b'X-GM-RAW "from:\\"Ann\\""'
    # Non-ASCII travels in a literal, as every client string does; a line break inside a
    # phrase separates words, as a space does.
    assert raw_criteria("subject", "café") == b'X-GM-RAW {15}\r\nsubject:"caf\xc3\xa9"'
    assert raw_criteria("text", '"two\r\nlines"') == b'X-GM-RAW "\\"two lines\\""'
