"""The fast FETCH reader gives what imapclient's parser gives, or steps aside."""

from __future__ import annotations

import pytest

from bridge.imap.fastparse import parse_fetch_items
from bridge.imap.responses import _fetch_items_slowly
from bridge.imap.wire import Untagged

HEADER = b"From: a@x\r\nSubject: hi\r\n\r\n"
CASES = [
    [b'(UID 5 FLAGS (\\Seen $Forwarded) MODSEQ (12) X-GUID 1795.M2P3.vm,S=1,W=2)'],
    [b'(UID 7 RFC822.SIZE 443 INTERNALDATE " 1-Jan-2026 10:00:00 +0100" PREVIEW "say \\"hi\\"")'],
    [(b"(UID 9 BODY[HEADER] {%d}" % len(HEADER), HEADER),
     b' BODYSTRUCTURE ((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL NIL NIL '
     b'NIL)("text" "html" NIL NIL NIL "base64" 20 1 NIL NIL NIL NIL) "alternative" '
     b'("boundary" "b") NIL NIL NIL)("application" "pdf" ("name" "a.pdf") "<c@x>" NIL '
     b'"base64" 100 NIL ("attachment" ("filename" "a.pdf")) NIL NIL) "mixed" '
     b'("boundary" "a") NIL NIL NIL) PREVIEW NIL)'],
    [(b"(UID 3 BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)] {%d}" % len(HEADER), HEADER),
     b" FLAGS ())"],
    [b'(UID 4 BODYSTRUCTURE ("message" "rfc822" NIL NIL NIL "7bit" 50 ("date" "s" NIL NIL '
     b'NIL NIL NIL NIL NIL NIL) ("text" "plain" NIL NIL NIL "7bit" 5 1 NIL NIL NIL NIL) 3 '
     b'NIL NIL NIL NIL))'],
]  # fmt: skip


@pytest.mark.parametrize("records", CASES)
def test_same_values_as_imapclient(records: list[bytes | tuple[bytes, bytes]]) -> None:
    fast = parse_fetch_items(records)
    slow = _fetch_items_slowly(Untagged("FETCH", 1, tuple(records)))
    assert fast == slow


@pytest.mark.parametrize(
    "records",
    [[b"(UID 1 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))"], [b"(UID 1 FLAGS (\\Seen)"],
     [b'(UID 1 PREVIEW "unterminated)'], [(b"(UID 1 BODY[] {5}", b"abc")]],
)  # fmt: skip
def test_steps_aside_for_what_it_does_not_know(records: list[bytes | tuple[bytes, bytes]]) -> None:
    with pytest.raises(ValueError):
        parse_fetch_items(records)
