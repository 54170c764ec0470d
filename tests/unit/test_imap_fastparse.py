"""The fast FETCH reader gives what imapclient's parser gives, or steps aside."""

from __future__ import annotations

import random

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
    [b'(UID 8 X-GM-MSGID 1278455344230334865 X-GM-LABELS (\\Inbox \\Sent Important '
     b'"Muy Importante" 2024 "say \\"hi\\"" &AOk-t&AOk-) FLAGS ())'],
    [b"(UID 2 X-GM-LABELS ())"],
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


def _quoted(rng: random.Random) -> bytes:
    text = "".join(rng.choice('ab c"\\é-=?') for _ in range(rng.randint(0, 12)))
    return b'"' + text.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _part(rng: random.Random, depth: int) -> bytes:
    if depth < 2 and rng.random() < 0.3:
        parts = b"".join(_part(rng, depth + 1) for _ in range(rng.randint(1, 3)))
        return b"(" + parts + b' "mixed" ("boundary" ' + _quoted(rng) + b") NIL NIL NIL)"
    params = rng.choice([b"NIL", b'("charset" ' + _quoted(rng) + b")"])
    return (
        b'("text" "plain" '
        + params
        + b" NIL "
        + rng.choice([b"NIL", _quoted(rng)])
        + b' "7bit" %d %d NIL NIL NIL NIL)' % (rng.randint(0, 9999), rng.randint(0, 99))
    )


def _response(rng: random.Random) -> list[bytes | tuple[bytes, bytes]]:
    day, sign = rng.randint(1, 28), rng.choice("+-")
    items = [
        b"UID %d" % rng.randint(1, 10**6),
        b"FLAGS (" + b" ".join(rng.sample([b"\\Seen", b"\\Flagged", b"$label1", b"x-y"],
                                          rng.randint(0, 3))) + b")",
        b"MODSEQ (%d)" % rng.randint(1, 10**12),
        b"RFC822.SIZE %d" % rng.randint(0, 10**7),
        (f'INTERNALDATE "{day:2d}-{rng.choice(["Jan", "feb", "DEC"])}-20{rng.randint(10, 30)}'
         f' {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}'
         f' {sign}{rng.randint(0, 14):02d}{rng.choice([0, 30, 45]):02d}"').encode(),
        b"PREVIEW " + rng.choice([b"NIL", _quoted(rng)]),
        b"BODYSTRUCTURE " + _part(rng, 0),
    ]  # fmt: skip
    rng.shuffle(items)
    header = rng.choice([b"", b"Subject: x\r\n\r\n", b"From: a@b\r\n X: y\r\n\r\n"])
    head = b"(" + b" ".join(items) + b" BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}" % len(header)
    return [(head, header), b")"]


def test_random_responses_read_as_imapclient_reads_them() -> None:
    rng = random.Random(3501)
    for _ in range(2_000):
        records = _response(rng)
        slow = _fetch_items_slowly(Untagged("FETCH", 1, tuple(records)))
        fast = parse_fetch_items(records)
        slow.pop("UID"), fast.pop("UID")
        assert fast == slow, records
