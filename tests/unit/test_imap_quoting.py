from __future__ import annotations

import pytest

from bridge.imap import quoting
from bridge.imap.wire import split_literals


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("INBOX", b'"INBOX"'),
        ("", b'""'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        ('\\"', b'"\\\\\\""'),
        ("a b (c) {3} * %", b'"a b (c) {3} * %"'),
        (b"raw bytes", b'"raw bytes"'),
        # Anything not printable ASCII goes in a literal, sent as UTF-8.
        ("é", b"{2}\r\n\xc3\xa9"),
        ("INBOX\r\nA1 DELETE INBOX", b"{22}\r\nINBOX\r\nA1 DELETE INBOX"),
        ("tab\there", b"{8}\r\ntab\there"),
        ("\x7f", b"{1}\r\n\x7f"),
        (b"\xff\xfe", b"{2}\r\n\xff\xfe"),
    ],
)
def test_astring(value: str | bytes, expected: bytes) -> None:
    assert quoting.astring(value) == expected


def test_astring_uses_a_literal_for_long_values() -> None:
    value = "x" * (quoting.MAX_QUOTED + 1)
    assert quoting.astring(value).startswith(b"{1025}\r\n")
    assert quoting.astring("x" * quoting.MAX_QUOTED).startswith(b'"')


@pytest.mark.parametrize("value", ["nul\x00", b"\x00", "a\x00b\r\n"])
def test_astring_rejects_nul(value: str | bytes) -> None:
    with pytest.raises(ValueError):
        quoting.astring(value)


def test_astring_rejects_lone_surrogates() -> None:
    with pytest.raises(ValueError):
        quoting.astring("\udcff")


def test_quoted_refuses_what_needs_a_literal() -> None:
    with pytest.raises(ValueError):
        quoting.quoted("line\r\nbreak")


@pytest.mark.parametrize(
    "value",
    [
        'x" DELETE "INBOX',
        "INBOX\r\nA1 DELETE INBOX",
        "INBOX\nA1 DELETE INBOX",
        "x\\",
        'x\\" (',
        "{5}\r\nhello",
        'Réunions "Q3" \\ 2026\r\n',
    ],
)
def test_every_astring_is_one_argument_on_the_wire(value: str) -> None:
    """Whatever the value, the command keeps exactly one argument and no stray CRLF."""
    command = b"CREATE " + quoting.astring(value)
    parts = split_literals(command)
    if len(parts) == 1:
        (tail, literal) = parts[0]
        assert literal is None
        assert tail.startswith(b'CREATE "') and tail.endswith(b'"')
        inner = tail[len(b'CREATE "') : -1]
        # Every quote inside is escaped: the quoted string ends where it should.
        unescaped = inner.replace(b"\\\\", b"").replace(b'\\"', b"")
        assert b'"' not in unescaped and b"\\" not in unescaped
    else:
        (head, literal), (tail, none) = parts
        assert head.startswith(b"CREATE {") and literal == value.encode()
        assert tail == b"" and none is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("INBOX", b'"INBOX"'),
        ("Sent Items", b'"Sent Items"'),
        ("Réunions", b'"R&AOk-unions"'),
        ("Tom & Jerry", b'"Tom &- Jerry"'),
        ('Réunions "Q3" \\ 2026', b'"R&AOk-unions \\"Q3\\" \\\\ 2026"'),
        ("日本語", b'"&ZeVnLIqe-"'),
        ("", b'""'),
        # Controls other than CR/LF/NUL become base64 in modified UTF-7: still quotable.
        ("tab\there", b'"tab&AAk-here"'),
    ],
)
def test_mailbox_name(name: str, expected: bytes) -> None:
    assert quoting.mailbox_name(name) == expected
    assert (
        quoting.decode_mailbox_name(expected[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\"))
        == name
    )


@pytest.mark.parametrize(
    "name",
    ["INBOX\r\nA1 DELETE INBOX", "a\rb", "a\nb", "nul\x00", "\udcff"],
)
def test_mailbox_name_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        quoting.mailbox_name(name)


@pytest.mark.parametrize("raw", [b"&Jjo!-", b"&2D3-", b"&Zm9v", b"a&b", b"&"])
def test_decode_mailbox_name_rejects_what_would_not_encode_back(raw: bytes) -> None:
    with pytest.raises(ValueError):
        quoting.decode_mailbox_name(raw)


@pytest.mark.parametrize("keyword", ["$label", "$Forwarded", "NonJunk", "a.b-c_d", "x", "1234"])
def test_atom_keyword_accepts(keyword: str) -> None:
    assert quoting.atom_keyword(keyword) == keyword.encode()


@pytest.mark.parametrize(
    "keyword",
    [
        "",
        "two words",
        "paren(",
        "paren)",
        "brace{",
        "percent%",
        "star*",
        'quote"',
        "back\\slash",
        "\\Seen",
        "bracket]",
        "crlf\r\n",
        "nul\x00",
        "del\x7f",
        "ünïcode",
        "$label\r\nA1 DELETE INBOX",
    ],
)
def test_atom_keyword_rejects(keyword: str) -> None:
    with pytest.raises(ValueError):
        quoting.atom_keyword(keyword)


@pytest.mark.parametrize("use", ["\\Drafts", "\\Sent", "\\Archive"])
def test_special_use_accepts(use: str) -> None:
    assert quoting.special_use(use) == use.encode()


@pytest.mark.parametrize("use", ["Drafts", "\\", "\\Drafts)", "\\Dra fts", "\\Drafts\r\n"])
def test_special_use_rejects(use: str) -> None:
    with pytest.raises(ValueError):
        quoting.special_use(use)


def test_header_fields_item() -> None:
    item = quoting.header_fields_item(["Message-ID", "X-Odd(Name)"])
    assert item == 'BODY.PEEK[HEADER.FIELDS (Message-ID "X-Odd(Name)")]'
    assert quoting.header_fields_item(["Subject"], peek=False, exclude=True) == (
        "BODY[HEADER.FIELDS.NOT (Subject)]"
    )


@pytest.mark.parametrize("name", ["", "Sub ject", "Subject:", "X]", "X[", "é", "A\r\nB"])
def test_header_field_name_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        quoting.header_field_name(name)


def test_header_fields_item_needs_a_name() -> None:
    with pytest.raises(ValueError):
        quoting.header_fields_item([])


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("\\Inbox", b"\\Inbox"),  # a system label is an atom
        ("\\Starred", b"\\Starred"),
        ("Work", b'"Work"'),
        ("Muy Importante", b'"Muy Importante"'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("Entwürfe", b'"Entw&APw-rfe"'),  # modified UTF-7, as folder names
        ("\\In box", b'"\\\\In box"'),  # not an atom: a user label, quoted
    ],
)
def test_gmail_label(label: str, expected: bytes) -> None:
    assert quoting.gmail_label(label) == expected


def test_gmail_label_refuses_what_no_label_holds() -> None:
    with pytest.raises(ValueError):
        quoting.gmail_label("Work\r\nA1 DELETE INBOX")
