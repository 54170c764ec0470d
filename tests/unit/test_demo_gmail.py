"""The Gmail emulation's wire helpers and folder rules, on raw bytes."""

from __future__ import annotations

import io

import pytest

from bridge.demo.gmail.model import (
    ALL_MAIL,
    SPAM,
    TRASH,
    gm_id,
    label_folder,
    labels_item,
    normalized,
)
from bridge.demo.gmail.wire import Refused, read_unit, tokens


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"1:3 +X-GM-LABELS (foo \\Inbox)\r\n", [b"1:3", b"+X-GM-LABELS", [b"foo", b"\\Inbox"]]),
        (b'"[Gmail]/All Mail" "a \\"b\\""\r\n', [b"[Gmail]/All Mail", b'a "b"']),
        (b"X-GM-RAW {5+}\r\nhi yo\r\n", [b"X-GM-RAW", b"hi yo"]),
        (b'"" *', [b"", b"*"]),
        (b"(a (b c)) d", [[b"a", [b"b", b"c"]], b"d"]),
    ],
)
def test_tokens(data: bytes, expected: list[object]) -> None:
    assert tokens(data) == expected


@pytest.mark.parametrize("data", [b"(a", b"a)", b"{x}\r\n"])
def test_tokens_refuse_what_they_cannot_read(data: bytes) -> None:
    with pytest.raises(Refused):
        tokens(data)


def test_read_unit_takes_literals_and_makes_them_non_synchronizing() -> None:
    asked: list[int] = []
    stream = io.BytesIO(b"a1 APPEND INBOX {5}\r\nhello\r\na2 NOOP\r\n")
    unit = read_unit(stream, lambda: asked.append(1))
    assert unit == b"a1 APPEND INBOX {5+}\r\nhello\r\n" and asked == [1]
    assert read_unit(stream) == b"a2 NOOP\r\n"
    with pytest.raises(EOFError):
        read_unit(stream)


def test_read_unit_leaves_a_servers_literals_alone() -> None:
    response = b"* 1 FETCH (BODY[] {5}\r\nhello UID 3)\r\na1 OK done\r\n"
    stream = io.BytesIO(response)
    assert read_unit(stream) == b"* 1 FETCH (BODY[] {5}\r\nhello UID 3)\r\n"


def test_labels_as_the_document_shows_them() -> None:
    folders = [ALL_MAIL, "INBOX", "[Gmail]/Sent Mail", "Important", "Muy Importante", "Été"]
    assert labels_item(folders) == (
        b'X-GM-LABELS ("Muy Importante" &AMk-t&AOk- Important \\Inbox \\Sent)'
    )
    assert labels_item([ALL_MAIL]) == b"X-GM-LABELS ()"
    assert labels_item(["a]b"]) == b'X-GM-LABELS ("a]b")'  # "]" is no ATOM-CHAR
    assert label_folder(b"\\inbox") == "INBOX" and label_folder(b"&AMk-t&AOk-") == "Été"


def test_trash_and_spam_hold_a_message_alone() -> None:
    assert normalized({"INBOX", TRASH}) == {TRASH}
    assert normalized({SPAM, "Work"}) == {SPAM}
    assert normalized({"Work"}) == {"Work", ALL_MAIL}
    assert normalized(set()) == {ALL_MAIL}


def test_message_ids_are_stable_63_bit_numbers() -> None:
    number = gm_id("1796400268.M227034P27680.vm,S=33,W=37")
    assert number == gm_id("1796400268.M227034P27680.vm,S=33,W=37")
    assert 0 <= number < 2**63 and number != gm_id("another")
