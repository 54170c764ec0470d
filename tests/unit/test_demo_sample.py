from __future__ import annotations

import email
import email.policy
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from itertools import pairwise

import pytest

from bridge.demo.sample import SampleMessage, bulk_messages, demo_mailbox

DEMO_FOLDERS = {"INBOX", "Sent", "Archive", "Work", "Work/Projects", "Drafts", "Trash"}


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def all_defects(msg: EmailMessage) -> list[object]:
    found: list[object] = []
    for part in msg.walk():
        found += part.defects
        # Header defects (bad encoded words, unparsable addresses) only show up on the
        # parsed header objects, not in part.defects.
        for _name, value in part.items():
            found += getattr(value, "defects", ())
    return found


def assert_wire_format(raw: bytes) -> None:
    assert raw.isascii(), "raw must be 7-bit so any server accepts it verbatim"
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "bare CR"
    assert raw.endswith(b"\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


@pytest.fixture(scope="module")
def demo() -> list[SampleMessage]:
    return demo_mailbox()


@pytest.fixture(scope="module")
def bulk() -> list[SampleMessage]:
    return list(bulk_messages(3000, seed=7))


# -- determinism -----------------------------------------------------------------------


def test_demo_is_deterministic(demo: list[SampleMessage]) -> None:
    assert demo_mailbox() == demo
    assert demo_mailbox(seed=2) != demo


def test_bulk_is_deterministic() -> None:
    first = list(bulk_messages(500, seed=3))
    assert list(bulk_messages(500, seed=3)) == first
    assert list(bulk_messages(500, seed=4)) != first
    # A longer run starts with the same messages: benchmarks can grow without reshuffling.
    assert list(bulk_messages(800, seed=3))[:500] == first


# -- wire format -----------------------------------------------------------------------


def test_demo_messages_parse_without_defects(demo: list[SampleMessage]) -> None:
    for sample in demo:
        assert_wire_format(sample.raw)
        msg = parse(sample.raw)
        assert all_defects(msg) == [], msg["Subject"]
        for header in ("Date", "From", "Message-ID", "Subject", "MIME-Version"):
            assert msg[header], (header, msg["Subject"])


def test_bulk_messages_parse_without_defects(bulk: list[SampleMessage]) -> None:
    for sample in bulk:
        assert_wire_format(sample.raw)
        msg = parse(sample.raw)
        assert all_defects(msg) == [], sample.raw[:300]
        assert msg.get_body(("plain",)).get_content().startswith("Hi Alice,")


def test_internal_dates_are_aware_utc(demo: list[SampleMessage], bulk: list[SampleMessage]) -> None:
    for sample in demo + bulk:
        assert sample.internal_date.utcoffset() == timedelta(0)
        assert sample.internal_date.microsecond == 0
        # The server receives a message after it was written.
        assert parse(sample.raw)["Date"].datetime <= sample.internal_date


# -- threads ---------------------------------------------------------------------------


def thread_ids(msg: EmailMessage) -> list[str]:
    refs = re.findall(r"<[^>]+>", str(msg.get("References", "")))
    reply_to = re.findall(r"<[^>]+>", str(msg.get("In-Reply-To", "")))
    return refs + reply_to


@pytest.mark.parametrize("kind", ["demo", "bulk"])
def test_threads_reference_existing_messages(
    kind: str, demo: list[SampleMessage], bulk: list[SampleMessage]
) -> None:
    messages = [parse(m.raw) for m in (demo if kind == "demo" else bulk)]
    ids = [m["Message-ID"] for m in messages]
    assert len(set(ids)) == len(ids), "Message-IDs must be unique"
    known = set(ids)
    replies = 0
    for msg in messages:
        refs = thread_ids(msg)
        if not refs:
            continue
        replies += 1
        assert set(refs) <= known, msg["Subject"]
        assert msg["Subject"].startswith("Re: ")
        # In-Reply-To is the last entry of References (RFC 5322 3.6.4).
        assert msg["In-Reply-To"] == re.findall(r"<[^>]+>", msg["References"])[-1]
    assert replies >= (15 if kind == "demo" else len(messages) * 0.15)


def test_demo_threads_have_two_to_five_messages(demo: list[SampleMessage]) -> None:
    roots: Counter[str] = Counter()
    for sample in demo:
        msg = parse(sample.raw)
        refs = re.findall(r"<[^>]+>", str(msg.get("References", "")))
        roots[refs[0] if refs else msg["Message-ID"]] += 1
    threads = [size for size in roots.values() if size > 1]
    assert len(threads) >= 8
    assert min(threads) >= 2
    assert max(threads) <= 5


# -- demo content ----------------------------------------------------------------------


def test_demo_folders_and_size(demo: list[SampleMessage]) -> None:
    folders = Counter(m.folder for m in demo)
    assert set(folders) == DEMO_FOLDERS
    assert 50 <= len(demo) <= 70
    assert folders["INBOX"] >= 15
    assert folders["Drafts"] == 1
    # Sorted by date, and unique per folder: INTERNALDATE order is UID order.
    assert [m.internal_date for m in demo] == sorted(m.internal_date for m in demo)
    per_folder = Counter((m.folder, m.internal_date) for m in demo)
    assert max(per_folder.values()) == 1


def test_demo_flags(demo: list[SampleMessage]) -> None:
    flags = Counter(flag for m in demo for flag in m.flags)
    assert flags["\\Seen"] >= 40
    assert flags["\\Flagged"] >= 3
    assert flags["\\Answered"] >= 5
    assert flags["$Forwarded"] == 1
    unseen = [m for m in demo if "\\Seen" not in m.flags]
    assert 4 <= len(unseen) <= 15
    (draft,) = (m for m in demo if m.folder == "Drafts")
    assert "\\Draft" in draft.flags
    assert all("\\Seen" in m.flags for m in demo if m.folder in ("Sent", "Archive", "Trash"))


def test_sent_holds_the_users_replies(demo: list[SampleMessage]) -> None:
    sent = [parse(m.raw) for m in demo if m.folder == "Sent"]
    assert len(sent) >= 8
    for msg in sent:
        assert msg["From"].addresses[0].addr_spec == "alice@example.org"
    assert sum(1 for msg in sent if msg["Subject"].startswith("Re: ")) >= 8


def test_demo_non_ascii_headers_are_encoded(demo: list[SampleMessage]) -> None:
    messages = [(m.raw, parse(m.raw)) for m in demo]
    names = {msg["From"].addresses[0].display_name for _, msg in messages}
    subjects = {msg["Subject"] for _, msg in messages}
    assert {"Zoë Ångström", "田中 優子", "Björn Müller"} <= names
    assert "会議のお知らせ" in subjects
    assert any(b"=?utf-8?" in raw.lower() for raw, _ in messages)


def test_demo_newsletter_is_multipart_alternative(demo: list[SampleMessage]) -> None:
    newsletters = [parse(m.raw) for m in demo if b"List-Id:" in m.raw]
    assert newsletters
    for msg in newsletters:
        assert msg.get_content_type() == "multipart/alternative"
        assert "WEEKLY BYTE" in msg.get_body(("plain",)).get_content()
        assert "<h1" in msg.get_body(("html",)).get_content()
        assert msg["List-Unsubscribe"]


def test_demo_attachments(demo: list[SampleMessage]) -> None:
    attachments = {}
    raw_by_name = {}
    for sample in demo:
        for part in parse(sample.raw).iter_attachments():
            attachments[part.get_filename()] = part
            raw_by_name[part.get_filename()] = sample.raw
    pdf = attachments["Präsentation Q3 \u2013 Übersicht.pdf"]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF-1.4") and b"%%EOF" in pdf.get_content()
    # RFC 2231 parameter encoding, not an RFC 2047 encoded word inside quotes.
    assert b"filename*=utf-8''Pr%C3%A4sentation" in raw_by_name[pdf.get_filename()]
    png = attachments["alesund-harbour.png"]
    assert png.get_content_type() == "image/png"
    assert png.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    fwd = next(parse(m.raw) for m in demo if b"Subject: Fwd:" in m.raw)
    (inner,) = (p for p in fwd.iter_attachments() if p.get_content_type() == "message/rfc822")
    assert inner.get_content()["Subject"] == "Slides for Thursday"


# -- bulk ------------------------------------------------------------------------------


def test_bulk_mix(bulk: list[SampleMessage]) -> None:
    n = len(bulk)
    assert n == 3000
    assert {m.folder for m in bulk} == {"INBOX"}
    seen = sum("\\Seen" in m.flags for m in bulk) / n
    multipart = sum(b"multipart/mixed" in m.raw for m in bulk) / n
    replies = sum(b"\r\nIn-Reply-To:" in m.raw for m in bulk) / n
    non_ascii_subject = sum(b"Subject: =?UTF-8?B?" in m.raw for m in bulk) / n
    assert 0.65 < seen < 0.75
    assert 0.07 < multipart < 0.13
    assert 0.16 < replies < 0.24
    assert 0.04 < non_ascii_subject < 0.12
    sizes = sorted(len(m.raw) for m in bulk)
    assert sizes[n // 2] < 4000, "mostly small"
    assert sizes[-1] > 20000, "a few large ones"
    assert len({parse(m.raw)["From"] for m in bulk[:300]}) > 30


def test_bulk_dates_increase_from_start() -> None:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    messages = list(bulk_messages(200, folder="Work/Bench", seed=9, start=start))
    dates = [m.internal_date for m in messages]
    assert all(a < b for a, b in pairwise(dates))
    assert start < dates[0] < start + timedelta(hours=2)
    assert {m.folder for m in messages} == {"Work/Bench"}


def test_bulk_edge_cases() -> None:
    assert list(bulk_messages(0)) == []
    with pytest.raises(ValueError):
        list(bulk_messages(-1))


def test_bulk_50000_is_fast() -> None:
    began = time.perf_counter()
    total = 0
    count = 0
    for message in bulk_messages(50_000):
        total += len(message.raw)
        count += 1
    elapsed = time.perf_counter() - began
    assert count == 50_000
    assert elapsed < 10, f"50,000 messages took {elapsed:.1f} s"
