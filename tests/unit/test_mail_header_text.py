"""The header index's record of a header block (bridge.mail.header_text)."""

from __future__ import annotations

import pytest

from bridge.mail.header_text import INEXACT_BIT, header_text


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
