"""The header index's record of a header block (bridge.mail.header_text)."""

from __future__ import annotations

import random
import string

import pytest

from bridge.mail.header_text import INEXACT_BIT, header_text, words, words_any
from bridge.mail.sort_keys import casemap_any, unicode_casemap


@pytest.mark.parametrize(
    ("to", "words", "exact"),
    [
        ("Alice Smith <alice@ex.test>", "ALICE SMITH ALICE EX TEST", True),
        ("=?utf-8?b?0JjQstCw0L0=?= <ivan@ru.test>", "ИВАН IVAN RU TEST", True),
        # Raw UTF-8 beside an encoded-word: decode_header once turned Иван into "\u0418..."
        # and called it exact; its words are the server's now, and the server decides.
        ("Иван <ivan@ru.test>, =?utf-8?q?Zo=C3=AB?= <zoe@ex.test>", "ИВАН IVAN RU TEST", False),
    ],
)
def test_address_fields_keep_the_servers_words(to: str, words: str, exact: bool) -> None:
    record = header_text(f"To: {to}\r\n\r\n".encode())
    assert record.to.startswith(words)
    assert "U0418" not in record.to
    assert bool(record.inexact & INEXACT_BIT["to"]) is not exact


def test_ascii_text_takes_the_same_words_and_keys_by_the_short_way() -> None:
    """Most headers are ASCII, where case-mapping is upper-casing and a word is a run of
    letters and digits; the shortcut must agree with the rule on every such text."""
    chooser = random.Random(8621)
    alphabet = string.printable + "\x00\x01\x1b\x7f"
    for _ in range(20_000):
        text = "".join(chooser.choice(alphabet) for _ in range(chooser.randint(0, 40)))
        assert words(text) == words_any(text), text
        assert unicode_casemap(text) == casemap_any(text), text
    assert words("Re: [list-42] Ünïcode") == words_any("Re: [list-42] Ünïcode")


def test_plain_address_lists_skip_the_parser_and_index_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Address lists that look plain are indexed without the address parser: random
    lists, plain and not (no domain, a name with '@' or '<', comments, groups, quotes,
    encoded-words), give the same record with the shortcut and without it."""
    chooser = random.Random(5322)
    parts = [
        "alice", "Bob Smith", "a.b-c_d+e", "ex.test", "@", "<", ">", ",", " ", ".", '"', "'",
        "(c)", ":", ";", "=?utf-8?q?Zo=C3=AB?=", "Zoë", "x@y", "\t", "\\", '"Alice Martin"',
        '"Smith, Al"', "=?UTF-8?B?Um9zYQ==?=", "a@b.c", " <a@b.c>",
    ]  # fmt: skip
    lists = ["alice@ex.test", "Alice Smith <alice@ex.test>, bob@ex.test", "Bob@home <bob>",
             "Bob <bob>", "a@b c@d", "O'Brien <o@ex.test>", "J. Q. Public <jqp@ex.test>",
             '"Alice Martin" <alice@ex.test>', "=?UTF-8?B?Um9zYQ==?= <rosa@ex.test>",
             '"Smith, Al" <al@ex.test>', '"a\\"b" <x@ex.test>']  # fmt: skip
    lists += ["".join(chooser.choice(parts) for _ in range(chooser.randint(1, 12)))
              for _ in range(4000)]  # fmt: skip
    # Lists as mail has them, three in ten with one character changed at random.
    names = ["", "Alice Smith ", '"Martin, A." ', "=?UTF-8?B?Um9zYQ==?= ", "J. O'Brien "]
    addresses = ["alice@ex.test", "a.b+c@mail.ex.test", "bob", "x@"]
    for _ in range(3000):
        named = [f"{chooser.choice(names)}<{a}>" for a in chooser.choices(addresses, k=3)]
        value = ", ".join(named[: chooser.randint(1, 3)])
        if chooser.random() < 0.3:
            value = chooser.choice(addresses) + (", " + value if chooser.random() < 0.5 else "")
        if chooser.random() < 0.3:
            at = chooser.randrange(len(value))
            value = value[:at] + chooser.choice(parts) + value[at + 1 :]
        lists.append(value)
    blocks = [f"From: {value}\r\nTo: {value}, z@ex.test\r\n\r\n".encode() for value in lists]
    shortcut = [header_text(block) for block in blocks]
    monkeypatch.setattr("bridge.mail.header_text._plain_list", lambda text: False)
    assert shortcut == [header_text(block) for block in blocks]
