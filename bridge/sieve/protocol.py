"""The ManageSieve wire format (RFC 5804 §4), without I/O.

Writing: every argument is a string, built by ``string()``: quoted when it is short and
printable, otherwise a non-synchronizing literal ``{n+}`` (the only literal a client may
send). A quoted string never holds CR or LF and a literal announces its length, so no
value can end a command early; ``command()`` checks that again before anything is sent.

Reading: a response is any number of data lines, then ``OK``, ``NO`` or ``BYE`` with an
optional parenthesised response code and an optional human-readable string. A line may
end in ``{n}`` (or ``{n+}``): n octets follow, and the line goes on after them. Tokens
are strings (quoted or literal), atoms (``ACTIVE``, ``OK``, numbers, code names) and
parenthesised lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Union

MAX_QUOTED = 1024  # §4: a quoted string holds at most 1024 octets
MAX_LINE = 64 * 1024
MAX_LITERAL = 16 * 1024 * 1024
MAX_DATA_LINES = 100_000

_COMMAND_NAME = re.compile(r"[A-Z]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# §4 ATOM-CHAR: printable ASCII except SP, '"', "(", ")", "\", "{".
_ATOM = re.compile(rb"[!#-'*-\[\]-z|-~]+")
_LITERAL_AT_END = re.compile(rb"\{(\d{1,10})\+?\}")
_CLIENT_LITERAL = re.compile(rb"\{(\d+)\+\}\r\n")
STATUSES = ("OK", "NO", "BYE")


class ProtocolError(ValueError):
    """The server said something that is not ManageSieve, or closed the connection."""


class Atom(str):
    """An unquoted word of a response: ``OK``, ``ACTIVE``, ``QUOTA/MAXSIZE``, a number."""

    __slots__ = ()


Token = Union[str, Atom, list["Token"]]  # noqa: UP007 - a recursive alias needs Union


class Source(Protocol):
    """Where responses are read from: a socket's buffer, or bytes in a test."""

    def readline(self, limit: int, /) -> bytes: ...
    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class Response:
    status: str  # OK, NO or BYE
    code: str | None  # upper-cased, e.g. "QUOTA/MAXSIZE", "NONEXISTENT", "SASL"
    code_args: tuple[Token, ...]
    text: str
    lines: tuple[tuple[Token, ...], ...]  # the data lines before the status line


# -- writing ---------------------------------------------------------------------------------


def _to_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise ValueError("string is not valid Unicode") from exc


def string(value: str | bytes) -> bytes:
    """``value`` as a ManageSieve string: quoted if short and free of control
    characters, else a non-synchronizing literal. NUL is refused: neither Sieve scripts
    nor script names may hold it."""
    data = _to_bytes(value)
    if b"\x00" in data:
        raise ValueError("NUL cannot be sent to a ManageSieve server")
    try:
        printable = len(data) <= MAX_QUOTED and not _CONTROL.search(data.decode("utf-8"))
    except UnicodeDecodeError:  # quoted strings are UTF-8 (§4 SAFE-UTF8-CHAR)
        printable = False
    if printable:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d+}\r\n" % len(data) + data


def number(value: int) -> bytes:
    if not 0 <= value < 2**32:
        raise ValueError("a ManageSieve number is 0 to 4294967295")
    return str(value).encode("ascii")


def command(name: str, *args: bytes) -> bytes:
    """One command line: ``name`` and the rendered ``args``, then CRLF."""
    if not _COMMAND_NAME.fullmatch(name):
        raise ValueError(f"not a ManageSieve command name: {name!r}")
    for arg in args:
        _check_argument(arg)
    return b" ".join([name.encode("ascii"), *args]) + b"\r\n"


def _check_argument(arg: bytes) -> None:
    """Refuse an argument where CR, LF or NUL is anywhere but inside a literal: what makes
    injection impossible even for a caller that forgot ``string()``."""
    literal = _CLIENT_LITERAL.match(arg)
    if literal is not None:
        if len(arg) - literal.end() != int(literal.group(1)) or b"\x00" in arg:
            raise ValueError("a literal argument must hold exactly its announced size")
        return
    if any(ch in arg for ch in b"\r\n\x00"):
        raise ValueError("CR, LF or NUL outside a literal in a ManageSieve command")


# -- reading ---------------------------------------------------------------------------------


def _physical_line(source: Source) -> bytes:
    line = source.readline(MAX_LINE + 2)
    if not line:
        raise ProtocolError("the server closed the connection")
    if not line.endswith(b"\r\n"):
        if len(line) > MAX_LINE:
            raise ProtocolError("response line too long")
        raise ProtocolError("response line without CRLF")
    return line[:-2]


def _read_exact(source: Source, size: int) -> bytes:
    if size > MAX_LITERAL:
        raise ProtocolError("literal too large")
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = source.read(remaining)
        if not chunk:
            raise ProtocolError("the server closed the connection inside a literal")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _quoted(line: bytes, start: int) -> tuple[str, int]:
    """The quoted string opening at ``start``, and the position after it."""
    out = bytearray()
    pos = start + 1
    while pos < len(line):
        byte = line[pos]
        if byte == 0x22:  # '"'
            return out.decode("utf-8", "replace"), pos + 1
        if byte == 0x5C:  # '\' escapes the next octet (only '"' and '\' are legal)
            pos += 1
            if pos == len(line):
                break
        out.append(line[pos])
        pos += 1
    raise ProtocolError("unterminated quoted string")


def read_line(source: Source) -> tuple[Token, ...]:
    """One logical response line, its literals read inline, as tokens."""
    top: list[Token] = []
    stack: list[list[Token]] = [top]
    line = _physical_line(source)
    pos = 0
    while True:
        while pos < len(line) and line[pos] == 0x20:
            pos += 1
        if pos == len(line):
            break
        byte = line[pos]
        if byte == 0x22:
            value, pos = _quoted(line, pos)
            stack[-1].append(value)
        elif byte == 0x7B:  # '{': a literal; it must end the physical line
            marker = _LITERAL_AT_END.fullmatch(line, pos)
            if marker is None:
                raise ProtocolError("malformed literal")
            data = _read_exact(source, int(marker.group(1)))
            stack[-1].append(data.decode("utf-8", "replace"))
            line, pos = _physical_line(source), 0
        elif byte == 0x28:  # '('
            group: list[Token] = []
            stack[-1].append(group)
            stack.append(group)
            pos += 1
        elif byte == 0x29:  # ')'
            if len(stack) == 1:
                raise ProtocolError("unbalanced parenthesis")
            stack.pop()
            pos += 1
        else:
            atom = _ATOM.match(line, pos)
            if atom is None:
                raise ProtocolError(f"unexpected octet {byte:#04x} in a response")
            stack[-1].append(Atom(atom.group().decode("ascii")))
            pos = atom.end()
    if len(stack) != 1:
        raise ProtocolError("unbalanced parenthesis")
    return tuple(top)


def status_of(
    tokens: tuple[Token, ...], lines: tuple[tuple[Token, ...], ...] = ()
) -> Response | None:
    """The Response if ``tokens`` is a status line (``OK``/``NO``/``BYE`` ...), else None."""
    if not tokens or not isinstance(tokens[0], Atom) or tokens[0].upper() not in STATUSES:
        return None
    rest = list(tokens[1:])
    code: str | None = None
    code_args: tuple[Token, ...] = ()
    if rest and isinstance(rest[0], list):
        group = rest.pop(0)
        assert isinstance(group, list)
        if group and isinstance(group[0], Atom):
            code, code_args = group[0].upper(), tuple(group[1:])
    text = rest[0] if rest and isinstance(rest[0], str) else ""
    return Response(tokens[0].upper(), code, code_args, str(text), lines)


def read_response(source: Source) -> Response:
    """Data lines up to and including the status line that ends a response."""
    lines: list[tuple[Token, ...]] = []
    while True:
        tokens = read_line(source)
        response = status_of(tokens, tuple(lines))
        if response is not None:
            return response
        if len(lines) >= MAX_DATA_LINES:
            raise ProtocolError("too many response lines")
        lines.append(tokens)


def capabilities(lines: tuple[tuple[Token, ...], ...]) -> dict[str, str]:
    """Capability lines (§1.7: a name string, maybe a value string) -> {NAME: value}."""
    found: dict[str, str] = {}
    for tokens in lines:
        if not tokens or not isinstance(tokens[0], str) or isinstance(tokens[0], Atom):
            raise ProtocolError("a capability line must start with a string")
        value = tokens[1] if len(tokens) > 1 and isinstance(tokens[1], str) else ""
        found[tokens[0].upper()] = str(value)
    return found
