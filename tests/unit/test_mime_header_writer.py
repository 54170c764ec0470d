"""Header fields written for Email/set: folded into short lines in linear time, and read
back by bridge's own parser as the text that was written."""

from __future__ import annotations

import random
import time

from bridge.mime import as_addresses, as_text, parse_header_block
from bridge.mime.header_writer import addresses, field, unstructured, with_parameter
from bridge.mime.params import mime_fields

WORDS = ["a", "word", "longer-words", "é", "日本語", "=?", "x" * 100, '"quoted"']


def folded_value(line: bytes) -> tuple[str, str]:
    [header], _ = parse_header_block(line + b"\r\n")
    return header.name, header.text


def check_lines(line: bytes) -> None:
    assert line.endswith(b"\r\n")
    for physical in line[:-2].split(b"\r\n"):
        assert len(physical) <= 998
    for continuation in line[:-2].split(b"\r\n")[1:]:
        assert continuation[:1] in (b" ", b"\t")  # every fold is at white space


def test_unstructured_text_reads_back() -> None:
    rng = random.Random(3)
    for _ in range(500):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 60)))
        line = field("Subject", unstructured(text))
        check_lines(line)
        name, value = folded_value(line)
        assert name == "Subject"
        assert as_text(value) == text, line


def test_ascii_words_fold_to_short_lines() -> None:
    line = field("Subject", unstructured("word " * 100 + "end"))
    assert all(len(physical) <= 78 for physical in line[:-2].split(b"\r\n"))
    assert b"=?" not in line


def test_addresses_read_back() -> None:
    given = [
        {"name": "Zoë Ångström", "email": "zoe@example.com"},
        {"name": 'Doe, "J" \\ Jr', "email": "jd@example.com"},
        {"name": None, "email": "plain@example.com"},
        {"name": "Ann Smith", "email": "ann@example.com"},
    ] * 20
    line = field("To", addresses(given))
    check_lines(line)
    parsed = as_addresses(folded_value(line)[1])
    assert parsed == [{"name": a["name"], "email": a["email"]} for a in given]


def test_folding_time_is_linear() -> None:
    def seconds(size: int) -> float:
        text = "B " * (size // 2)
        started = time.perf_counter()
        for _ in range(5):
            field("Subject", unstructured(text))
            field("Subject", unstructured("é" * size))
        return time.perf_counter() - started

    small, large = seconds(5_000), seconds(50_000)
    # Ten times the text: ten times the time, give or take; the email package took 100x.
    assert large < small * 25, (small, large)


def test_parameters_read_back() -> None:
    rng = random.Random(9)
    for _ in range(300):
        name = "".join(rng.choice(['a', "é", '"', "\\", " ", ";", "%", "*", "'", "日"])
                       for _ in range(rng.randint(1, 200))).strip()  # fmt: skip
        value = with_parameter("attachment", "filename", name)
        line = field("Content-Disposition", value)
        check_lines(line)
        headers, _ = parse_header_block(line + b"\r\n")
        assert mime_fields(headers).name == name, line
