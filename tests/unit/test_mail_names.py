"""The delimiter inside a JMAP name and its look-alike in the IMAP name."""

from __future__ import annotations

import pytest

from bridge.mail.names import stand_in, to_imap, to_jmap


@pytest.mark.parametrize(
    ("jmap", "delimiter", "imap"),
    [
        ("Q1/Q2", "/", "Q1\u2215Q2"),
        ("v1.2", ".", "v1\u20242"),
        ("v1.2", "/", "v1.2"),  # not the delimiter: left alone (the server may refuse it)
        ("a/b", ".", "a/b"),
        ("plain", None, "plain"),
        ("a\\b", "\\", "a\\b"),  # no look-alike for this delimiter: refused before this
    ],
)
def test_round_trip(jmap: str, delimiter: str | None, imap: str) -> None:
    assert to_imap(jmap, delimiter) == imap
    assert to_jmap(imap, delimiter) == jmap


def test_every_imap_level_reads_and_writes_back_unchanged() -> None:
    for level in ("x\u2215y", "x\u2215y\u2215", "\u2215", "x.y"):
        name = to_jmap(level, "/")
        assert stand_in("/") not in name and to_imap(name, "/") == level
