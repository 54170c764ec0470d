"""The chunk-by-chunk transfer decoders give exactly what the whole-buffer ones give,
wherever the chunks are cut: base64 groups, ``=XX`` escapes, soft line breaks and trailing
white space split across chunks."""

from __future__ import annotations

import base64
import binascii
import itertools
import random

from bridge.mime.transfer import (
    Base64Decoder,
    QuotedPrintableDecoder,
    decode_base64,
    decode_quoted_printable,
    stream_decoder,
)

_QP_PIECES = [b"=3D", b"=\r\n", b"=\n", b"  \r\n", b"\t\n", b" ", b"=", b"=4", b"=ZZ", b"a",
              b"\xc3\xa9", b"word", b"\r\n", b"=C3=A9", b"= \r\n"]  # fmt: skip
_B64_JUNK = [b"\r\n", b" ", b"!", b"=", b"==", b"\t", b"*"]


def split_randomly(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(len(data) + 1), k=min(len(data) + 1, rng.randint(0, 12))))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def streamed(decoder: Base64Decoder | QuotedPrintableDecoder, pieces: list[bytes]) -> bytes:
    return b"".join(decoder.feed(piece) for piece in pieces) + decoder.finish()


def test_base64_in_any_pieces_decodes_as_whole() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        octets = rng.randbytes(rng.randint(0, 200))
        encoded = bytearray(base64.encodebytes(octets))
        for _ in range(rng.randint(0, 4)):  # junk, stray padding, a cut-off end
            at = rng.randint(0, len(encoded))
            if rng.random() < 0.8:
                encoded[at:at] = rng.choice(_B64_JUNK)
            else:
                del encoded[at:]
        data = bytes(encoded)
        whole, problem = decode_base64(data)
        decoder = Base64Decoder()
        assert streamed(decoder, split_randomly(data, rng)) == whole, data
        assert decoder.problem == problem, data


def test_quoted_printable_in_any_pieces_decodes_as_whole() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        data = b"".join(rng.choice(_QP_PIECES) for _ in range(rng.randint(0, 40)))
        expected = decode_quoted_printable(data)
        assert streamed(QuotedPrintableDecoder(), split_randomly(data, rng)) == expected, data
        # A tiny hold limit cuts long lines in the middle: still the same octets.
        cut_often = QuotedPrintableDecoder(hold_limit=4)
        assert streamed(cut_often, split_randomly(data, rng)) == expected, data


def test_a_long_line_is_not_held_whole() -> None:
    decoder = QuotedPrintableDecoder(hold_limit=1000)
    out = decoder.feed(b"x" * 5000)
    assert len(out) >= 4000
    assert out + decoder.finish() == b"x" * 5000


def test_one_megabyte_chunks_of_a_large_base64_body() -> None:
    octets = random.Random(1).randbytes(3 * 1024 * 1024 + 17)
    encoded = binascii.b2a_base64(octets)  # one long line
    decoder = stream_decoder("base64")
    pieces = [encoded[i : i + (1 << 20)] for i in range(0, len(encoded), 1 << 20)]
    assert streamed(decoder, pieces) == octets
    assert stream_decoder("8bit").feed(b"as is") == b"as is"


def test_a_line_with_no_safe_cut_is_not_held_whole() -> None:
    # White space and "=" only: no place where a cut surely decodes as the whole does.
    line = b"= \t=" * 1_000_000
    decoder = QuotedPrintableDecoder(hold_limit=1000, force_limit=10_000)
    out = bytearray()
    for start in range(0, len(line), 4096):
        out += decoder.feed(line[start : start + 4096])
        assert len(decoder._held) <= 10_000 + 4096
    out += decoder.feed(b"x\r\n") + decoder.finish()
    assert bytes(out) == decode_quoted_printable(line + b"x\r\n")


def test_forced_cuts_fall_between_escapes() -> None:
    rng = random.Random(11)
    for _ in range(500):
        data = b"".join(rng.choice([b"=", b"==", b"=3D", b"=4", b"=C3", b" ", b"\t", b"A"])
                        for _ in range(rng.randint(0, 60))) + b"z\r\n"  # fmt: skip
        decoder = QuotedPrintableDecoder(hold_limit=2, force_limit=6)
        assert streamed(decoder, split_randomly(data, rng)) == decode_quoted_printable(data), data
