"""The front's side of the IMAP wire: whole commands and responses with their literals,
and the arguments of the commands it reads itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, BinaryIO

_LITERAL_END = re.compile(rb"\{(\d+)(\+?)\}\r\n$")


class Refused(Exception):
    """A command the emulation does not serve: answered BAD with this text."""


def read_unit(stream: BinaryIO, on_literal: Callable[[], None] | None = None) -> bytes:
    """One response, or (with ``on_literal``, called before each synchronizing literal is
    read) one client command whose literals become ``{n+}``, for Dovecot's LITERAL+."""
    parts: list[bytes] = []
    while True:
        line = stream.readline(1 << 20)
        if not line:
            raise EOFError
        match = _LITERAL_END.search(line)
        if match is None:
            parts.append(line)
            return b"".join(parts)
        if on_literal is not None:
            if not match.group(2):
                on_literal()
            line = line[: match.start()] + b"{%d+}\r\n" % int(match.group(1))
        parts.append(line)
        parts.append(stream.read(int(match.group(1))))


def tokens(data: bytes) -> list[Any]:
    """IMAP arguments: bytes for atoms, strings and literals, lists for parentheses."""
    stack: list[list[Any]] = [[]]
    pos = 0
    while pos < len(data):
        char = data[pos : pos + 1]
        if char in b" \r\n":
            pos += 1
        elif char == b"(":
            stack.append([])
            pos += 1
        elif char == b")":
            if len(stack) == 1:
                raise Refused("unbalanced parentheses")
            inner = stack.pop()
            stack[-1].append(inner)
            pos += 1
        elif char == b'"':
            end = pos + 1
            value = bytearray()
            while end < len(data) and data[end : end + 1] != b'"':
                if data[end : end + 1] == b"\\":
                    end += 1
                value += data[end : end + 1]
                end += 1
            stack[-1].append(bytes(value))
            pos = end + 1
        elif char == b"{":
            match = re.match(rb"\{(\d+)\+?\}\r\n", data[pos:])
            if match is None:
                raise Refused("bad literal")
            start = pos + match.end()
            stack[-1].append(data[start : start + int(match.group(1))])
            pos = start + int(match.group(1))
        else:
            match = re.match(rb"[^ ()\r\n]+", data[pos:])
            assert match is not None
            stack[-1].append(match.group())
            pos += match.end()
    if len(stack) != 1:
        raise Refused("unbalanced parentheses")
    return stack[0]


def quoted(text: str) -> bytes:
    data = text.encode("utf-8")
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
