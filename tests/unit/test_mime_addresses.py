"""Address-list parsing: the fast path for plain lists agrees with the full parser."""

from __future__ import annotations

import random

from bridge.mime.addresses import _parse_grouped, _plain_addresses, parse_grouped_addresses

NAMES = ["", "Joe", "Joe Bloggs", "A  B", "O'Brien", "A & B", "J.R.", '"Q, R"', "(c)",
         "=?utf-8?q?J=C3=B6?=", "Ünï", "a\tb", "x@y", "Grp:", "Jo;e", '"Alice Martin"',
         '"Ünï  Ü"', '"=?utf-8?b?SsO2?="', '""', '" a "', '"a\\"b"', "a\\b", "[x]",
         "=?utf-8?q?J=C3=B6?= =?utf-8?q?rg?=", "Jo\u0308rg", '"Jo\u0308rg"']  # fmt: skip
ADDRESSES = ["joe@example.com", "a.b@c.d", "a..b@c.d", "x+y@z-w.org", "q=r@s.t", "u?v@w",
             "bad", "@x", "a@", "[1.2.3.4]@x", "a@[127.0.0.1]", "a@b."]  # fmt: skip


def _mailbox(rng: random.Random) -> str:
    name, address = rng.choice(NAMES), rng.choice(ADDRESSES)
    pad = rng.choice(["", " ", "  ", "\t"])
    shape = rng.randrange(4)
    if shape == 0:
        return f"{pad}{address}{pad}"
    if shape == 1:
        return f"{pad}{name}{pad}<{address}>{pad}"
    if shape == 2:
        return f"{name} {address}"  # no angle brackets
    return f"{pad}<{address}>"


def test_plain_lists_take_the_fast_path_with_the_same_result() -> None:
    value = "Joe Bloggs <joe@example.com>, ann@example.org,  A  B <x@y.z>"
    assert _plain_addresses(value) is not None
    assert parse_grouped_addresses(value) == _parse_grouped(value)


def test_the_fast_path_never_disagrees_with_the_full_parser() -> None:
    rng = random.Random(8621)
    fast = 0
    for _ in range(20_000):
        value = ",".join(_mailbox(rng) for _ in range(rng.randint(1, 3)))
        if _plain_addresses(value) is not None:
            fast += 1
        assert parse_grouped_addresses(value) == _parse_grouped(value), value
    assert fast > 1_000  # the comparison covered the fast path, not only the fallback


def test_what_is_not_plain_goes_to_the_full_parser() -> None:
    for value in ['"Q, R" <q@x>', "Group: a@b;", "a@b (comment)", '"a\\"b" <a@b>',
                  "a@b,", "", "<@relay:a@b>", "[x] <a@b>"]:  # fmt: skip
        assert _plain_addresses(value) is None, value


def test_quoted_and_encoded_names_take_the_fast_path() -> None:
    for value in ['"Alice Martin" <alice@example.org>', "=?utf-8?q?J=C3=B6?= <a@b>",
                  "Jö <j@x>", '"Martin, Alice" <a@b>'.replace(",", ""), '"" <a@b>']:  # fmt: skip
        assert _plain_addresses(value) is not None, value
        assert parse_grouped_addresses(value) == _parse_grouped(value), value
