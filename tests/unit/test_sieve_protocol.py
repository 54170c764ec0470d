"""The ManageSieve wire format: writing arguments, and reading responses from raw bytes."""

from __future__ import annotations

import io

import pytest

from bridge.sieve import protocol
from bridge.sieve.protocol import Atom, ProtocolError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("jmap-vacation", b'"jmap-vacation"'),
        ("", b'""'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        ("été", '"été"'.encode()),  # quoted strings are UTF-8
        ('a\r\nDELETESCRIPT "x"', b'{19+}\r\na\r\nDELETESCRIPT "x"'),
        ("tab\there", b"{8+}\r\ntab\there"),
        (b"\xff", b"{1+}\r\n\xff"),  # not UTF-8: only a literal carries it as it is
        ("x" * 1025, b"{1025+}\r\n" + b"x" * 1025),
    ],
)
def test_string(value: str | bytes, expected: bytes) -> None:
    assert protocol.string(value) == expected


def test_quoted_up_to_1024_octets() -> None:
    assert protocol.string("x" * 1024).startswith(b'"')


@pytest.mark.parametrize("value", ["nul\x00", "\udcff"])
def test_string_refuses_nul_and_lone_surrogates(value: str) -> None:
    with pytest.raises(ValueError):
        protocol.string(value)


def test_command() -> None:
    line = protocol.command("PUTSCRIPT", protocol.string("a b"), protocol.string("keep;\r\n"))
    assert line == b'PUTSCRIPT "a b" {7+}\r\nkeep;\r\n\r\n'
    assert protocol.command("HAVESPACE", b'"x"', protocol.number(10)) == b'HAVESPACE "x" 10\r\n'


@pytest.mark.parametrize(
    "arg",
    [
        b'"x"\r\nDELETESCRIPT "y"',  # CRLF outside a literal
        b"x\ny",
        b"{3+}\r\nab",  # shorter than announced
        b"{2+}\r\nabc",  # longer: the rest would be a command
        b"{1}\r\na",  # a synchronizing literal is not the client's to send
        b'"nul\x00"',
    ],
)
def test_command_refuses_injection(arg: bytes) -> None:
    with pytest.raises(ValueError):
        protocol.command("GETSCRIPT", arg)


@pytest.mark.parametrize("name", ["getscript", "GET SCRIPT", "X\r\n"])
def test_command_name(name: str) -> None:
    with pytest.raises(ValueError):
        protocol.command(name)


@pytest.mark.parametrize("value", [-1, 2**32])
def test_number_range(value: int) -> None:
    with pytest.raises(ValueError):
        protocol.number(value)


def read(data: bytes) -> protocol.Response:
    return protocol.read_response(io.BytesIO(data))


def test_greeting_capabilities() -> None:
    response = read(
        b'"IMPLEMENTATION" "Dovecot Pigeonhole"\r\n'
        b'"SIEVE" "fileinto vacation"\r\n'
        b'"STARTTLS"\r\n'
        b"{4}\r\nSASL {5}\r\nPLAIN\r\n"
        b'OK "ready"\r\n'
    )
    assert (response.status, response.text) == ("OK", "ready")
    assert protocol.capabilities(response.lines) == {
        "IMPLEMENTATION": "Dovecot Pigeonhole",
        "SIEVE": "fileinto vacation",
        "STARTTLS": "",
        "SASL": "PLAIN",
    }


def test_listscripts() -> None:
    response = read(b'"one"\r\n"two \\"2\\"" ACTIVE\r\n{5}\r\nthree\r\nOK\r\n')
    assert response.lines == (("one",), ('two "2"', Atom("ACTIVE")), ("three",))
    assert response.code is None and response.text == ""
    assert isinstance(response.lines[1][1], Atom)
    assert not isinstance(response.lines[0][0], Atom)


def test_getscript_literal_holds_anything() -> None:
    script = 'keep;\r\nOK "not the end"\r\n{3}\r\n'
    data = f'{{{len(script.encode())}}}\r\n{script}\r\nOK "done"\r\n'.encode()
    response = read(data)
    assert response.lines == ((script,),)
    assert response.text == "done"


def test_response_codes() -> None:
    no = read(b'NO (QUOTA/MAXSIZE) "Script is too large."\r\n')
    assert (no.status, no.code, no.text) == ("NO", "QUOTA/MAXSIZE", "Script is too large.")
    sasl = read(b'OK (SASL "cmVzcG9uc2U=")\r\n')
    assert (sasl.code, sasl.code_args) == ("SASL", ("cmVzcG9uc2U=",))
    tagged = read(b'ok (tag {3}\r\nabc) "x"\r\n')
    assert (tagged.status, tagged.code, tagged.code_args) == ("OK", "TAG", ("abc",))
    compile_error = read(b"NO {19}\r\nline 1: error\r\nmore\r\n")
    assert compile_error.text == "line 1: error\r\nmore"
    assert read(b'BYE (TRYLATER) "shutting down"\r\n').code == "TRYLATER"


def test_unknown_codes_with_nested_lists() -> None:
    response = read(b'NO (X-THING (1 "two") three) "t"\r\n')
    assert response.code == "X-THING"
    assert response.code_args == (["1", "two"], "three")


@pytest.mark.parametrize(
    "data",
    [
        b"",  # the connection closed
        b'OK "no crlf"',
        b'"unterminated\r\nOK\r\n',
        b"OK (QUOTA\r\n",
        b"OK QUOTA)\r\n",
        b"{5}\r\nab",  # closed inside a literal
        b"{x}\r\nOK\r\n",
        b"{3} trailing\r\nabc\r\nOK\r\n",
        b"OK \x01\r\n",
        b"{99999999999}\r\n",
    ],
)
def test_unreadable_responses(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        read(data)


def test_line_limit() -> None:
    with pytest.raises(ProtocolError):
        read(b'"' + b"x" * (protocol.MAX_LINE + 10) + b'"\r\nOK\r\n')


def test_capability_lines_must_start_with_a_string() -> None:
    with pytest.raises(ProtocolError):
        protocol.capabilities(read(b"SIEVE\r\nOK\r\n").lines)
