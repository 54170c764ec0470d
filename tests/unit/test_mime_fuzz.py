"""Random damage to the corpus: parsing and rendering must never raise, and what comes out
must still be valid JMAP (JSON-encodable UTF-8, unique part ids, bounded preview)."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest

from bridge.mime import email_properties, parse_message, summary_from_headers
from tests.unit.test_mime_golden import PROPERTIES as GOLDEN_PROPERTIES

CORPUS = sorted((Path(__file__).parent / "mime_corpus").glob("*.eml"))
MUTATIONS = 300

# The golden set's convenience and body properties, and header forms that stress parsing.
PROPERTIES = [
    *(name for name in GOLDEN_PROPERTIES if not name.startswith("header:")),
    "header:To:asGroupedAddresses:all",
    "header:X-Note:asDate",
    "header:X-Note:asURLs",
    "header:X-Note:asMessageIds",
    "header:Content-Type:asText",
]
BODY_PROPERTIES = [
    "partId",
    "blobId",
    "size",
    "headers",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
    "subParts",
    "header:Content-Disposition:asText",
]
# Octets that matter to the parsers, so mutations hit interesting paths often.
TOKENS = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"--",
    b"=?",
    b"?=",
    b"=?utf-8?b?",
    b"=?x?q?",
    b"=",
    b'"',
    b"(",
    b")",
    b"<",
    b">",
    b":",
    b";",
    b",",
    b"\\",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"*0*=",
    b"boundary=",
    b"Content-Type: multipart/mixed; boundary=",
    b"Content-Transfer-Encoding: base64\r\n",
    b"charset=utf-7",
    b" ",
    b"\t",
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randint(0, len(buf))
        action = rng.randrange(6)
        if action == 0 and buf:
            buf[min(position, len(buf) - 1)] = rng.randrange(256)
        elif action == 1:
            buf[position:position] = rng.choice(TOKENS)
        elif action == 2:
            del buf[position : position + rng.randint(1, 40)]
        elif action == 3:
            buf = buf[:position]
        elif action == 4:
            chunk = bytes(buf[position : position + rng.randint(1, 200)])
            buf[position:position] = chunk * rng.randint(1, 3)
        else:
            buf[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
    return bytes(buf)


def check(raw: bytes, max_bytes: int) -> None:
    parsed = parse_message(raw)
    result = email_properties(
        parsed,
        PROPERTIES,
        blob_id_for=lambda part_id: f"B{part_id}",
        body_properties=BODY_PROPERTIES,
        fetch_all=True,
        max_body_value_bytes=max_bytes,
    )
    msgspec.json.encode(result)  # raises on lone surrogates or non-JSON values
    assert len(result["preview"]) <= 256
    part_ids = [part.part_id for part in parsed.walk() if part.part_id is not None]
    assert len(part_ids) == len(set(part_ids))
    for part_id in part_ids:
        assert isinstance(parsed.part_content(part_id), bytes)
    for value in result["bodyValues"].values():
        if max_bytes:
            assert len(value["value"].encode()) <= max_bytes
    msgspec.json.encode(summary_from_headers(raw))


@pytest.mark.parametrize("path", CORPUS, ids=[path.stem for path in CORPUS])
def test_corpus_parses(path: Path) -> None:
    check(path.read_bytes(), 0)


def test_random_mutations_never_raise() -> None:
    rng = random.Random(8621)
    originals = [path.read_bytes() for path in CORPUS]
    for round_number in range(MUTATIONS):
        raw = mutate(rng.choice(originals), rng)
        try:
            check(raw, rng.choice([0, 1, 7, 64]))
        except Exception as error:  # name the input that broke, so it can be replayed
            raise AssertionError(f"mutation {round_number} failed on {raw!r}") from error
