from __future__ import annotations

import pytest

from bridge.mail.threading import base_subject, header_fields, message_ids


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "hello"),
        ("Re: Hello", "hello"),
        ("RE: re: Fwd: Hello", "hello"),
        ("Re[2]: Hello", "hello"),
        ("[list] Re: Hello  world", "hello world"),
        ("Hello (fwd)", "hello"),
        ("[Fwd: Hello]", "hello"),
        ("=?utf-8?q?R=C3=A9union?=", "réunion"),
        ("Re: =?utf-8?b?5Lya6K2w?=", "会議"),
        ("", ""),
        ("Re:", ""),
    ],
)
def test_base_subject(subject: str, expected: str) -> None:
    assert base_subject(subject) == expected


def test_header_fields_unfold_and_ids() -> None:
    raw = (
        b"Message-ID: <a@x>\r\nReferences: <r1@x>\r\n <r2@x>\r\n\t<r1@x>\r\n"
        b"In-Reply-To: <r2@x>\r\nSubject: Re: hi\r\n\r\n"
    )
    fields = header_fields(raw)
    assert message_ids(fields["message-id"]) == ("a@x",)
    assert message_ids(fields["references"] + fields["in-reply-to"]) == ("r1@x", "r2@x")
    assert fields["subject"] == [b"Re: hi"]
    assert header_fields(b"garbage without colon\r\n") == {}
