"""Sieve strings as bridge writes them, and what bridge reads from a user's script."""

from __future__ import annotations

import pytest

from bridge.sieve.language import ScriptFacts, analyse, quote, string_list, tokens


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", '"plain"'),
        ('a "quote" and \\', '"a \\"quote\\" and \\\\"'),
        ("one\ntwo\rthree\r\nfour", '"one\r\ntwo\r\nthree\r\nfour"'),  # only CRLF is allowed
        ("${hex:41}", '"${hex:41}"'),  # no variables/encoded-character: taken literally
        ("", '""'),
    ],
)
def test_quote(value: str, expected: str) -> None:
    assert quote(value) == expected


def test_quote_refuses_nul() -> None:
    with pytest.raises(ValueError):
        quote("a\x00b")


def test_quote_round_trips_through_the_lexer() -> None:
    value = 'tricky " \\ \r\n # /* text:\r\n.\r\n'
    [token] = tokens(quote(value))
    assert (token.kind, token.value) == ("string", value)


def test_string_list() -> None:
    assert string_list(["vacation", 'odd"one']) == '["vacation", "odd\\"one"]'


def test_analyse_finds_requires_and_includes() -> None:
    script = (
        'require ["fileinto", "Reject"];\r\n'
        'require "include";\r\n'
        'if ihave ["vacation", "date"] { vacation "x"; }\r\n'
        'include :personal "rules";\r\n'
        'include :once :optional "more \\"rules\\"";\r\n'
        'include :global "site";\r\n'
    )
    assert analyse(script) == ScriptFacts(
        extensions=frozenset({"fileinto", "reject", "include", "vacation", "date"}),
        personal_includes=("rules", 'more "rules"'),
        global_includes=("site",),
    )


def test_analyse_skips_comments_and_strings() -> None:
    script = (
        '# require "vacation";\r\n'
        '/* require "reject";\r\n include "x"; */\r\n'
        'require "fileinto";\r\n'
        'fileinto "require \\"ereject\\"";\r\n'
        "if true { reject text: # a comment\r\n"
        'require "vacation";\r\n'
        '..include :personal "y";\r\n'
        ".\r\n"
        ";}\r\n"
    )
    facts = analyse(script)
    assert facts.extensions == {"fileinto"}
    assert facts.personal_includes == ()


def test_text_block_dot_stuffing() -> None:
    [_, token, _] = tokens("reject text:\r\n..x\r\nline\r\n.\r\n;")
    assert token.value == ".x\r\nline\r\n"


def test_analyse_survives_broken_scripts() -> None:
    assert analyse('require ["vacation"') == ScriptFacts(frozenset({"vacation"}), (), ())
    assert analyse('require "reject\r\n').extensions == {"reject\r\n"}
    assert analyse("/* never closed").extensions == frozenset()
    assert analyse("include;").personal_includes == ()
