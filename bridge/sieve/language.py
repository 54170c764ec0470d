"""The Sieve language (RFC 5228), as much as bridge needs: writing strings, and reading
which extensions a user's script uses and which scripts it includes.

Reading is a lexer, not a parser: it finds ``require`` and ``ihave`` arguments and
``include`` commands (RFC 6609) in the token stream, with comments, quoted strings and
``text:`` blocks skipped exactly, so a word inside a comment or a string never counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TOKEN = re.compile(
    r"""
      (?P<space>[ \t\r\n]+)
    | (?P<hash>\#[^\n]*)
    | (?P<bracket>/\*.*?(?:\*/|\Z))
    | (?P<text>text:[ \t]*(?:\#[^\n]*)?\r?\n)
    | (?P<quoted>"(?:[^"\\]|\\.)*(?:"|\Z))
    | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
    | (?P<identifier>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>[0-9]+[KMGkmg]?)
    | (?P<special>[\[\](){},;])
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# A text: block ends at a line holding just "." (RFC 5228 §2.4.2, multi-line).
_TEXT_END = re.compile(r"^\.\r?$", re.MULTILINE)


@dataclass(frozen=True)
class Token:
    kind: str  # "string", "tag", "identifier", "number" or "special"
    value: str


@dataclass(frozen=True)
class ScriptFacts:
    extensions: frozenset[str]  # every capability named by require or ihave
    personal_includes: tuple[str, ...]  # include [:personal] "name"
    global_includes: tuple[str, ...]  # include :global "name"


def quote(value: str) -> str:
    """``value`` as a Sieve quoted string. Line breaks of any kind become CRLF, the only
    one a quoted string may hold; NUL is refused (no Sieve string can carry it)."""
    if "\x00" in value:
        raise ValueError("a Sieve string cannot contain NUL")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _LINE_BREAK.sub("\r\n", escaped) + '"'


def string_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(quote(value) for value in values) + "]"


def _unescape(body: str) -> str:
    # RFC 5228 §2.4.2: a backslash stands for the character after it.
    return re.sub(r"\\(.)", r"\1", body, flags=re.DOTALL)


def tokens(script: str) -> Iterator[Token]:
    """The script's tokens, comments and white space dropped."""
    pos = 0
    while pos < len(script):
        match = _TOKEN.match(script, pos)
        assert match is not None  # "other" matches any character
        kind = match.lastgroup
        pos = match.end()
        if kind in ("space", "hash", "bracket", "other"):
            continue
        value = match.group()
        if kind == "text":
            end = _TEXT_END.search(script, pos)
            body = script[pos : end.start() if end else len(script)]
            pos = end.end() if end else len(script)
            # Dot-stuffing: a line starting ".." stands for one starting ".".
            yield Token("string", re.sub(r"^\.\.", ".", body, flags=re.MULTILINE))
        elif kind == "quoted":
            closed = value.endswith('"') and len(value) > 1
            yield Token("string", _unescape(value[1 : -1 if closed else None]))
        else:
            assert kind is not None
            yield Token(kind, value)


def _statements(script: str) -> Iterator[list[Token]]:
    """Token runs between ``;``, ``{`` and ``}``: a command with its arguments and tests."""
    current: list[Token] = []
    for token in tokens(script):
        if token.kind == "special" and token.value in ";{}":
            if current:
                yield current
            current = []
        else:
            current.append(token)
    if current:
        yield current


def _strings_after(run: list[Token], index: int) -> list[str]:
    """The string or string list that starts at ``run[index]``."""
    if index < len(run) and run[index].kind == "string":
        return [run[index].value]
    found: list[str] = []
    if index < len(run) and run[index].value == "[":
        for token in run[index + 1 :]:
            if token.value == "]":
                break
            if token.kind == "string":
                found.append(token.value)
    return found


def analyse(script: str) -> ScriptFacts:
    extensions: set[str] = set()
    personal: list[str] = []
    global_: list[str] = []
    for run in _statements(script):
        for index, token in enumerate(run):
            if token.kind == "identifier" and token.value.lower() in ("require", "ihave"):
                extensions.update(name.lower() for name in _strings_after(run, index + 1))
        if run[0].kind == "identifier" and run[0].value.lower() == "include":
            names = [token.value for token in run if token.kind == "string"]
            if names:
                tags = {token.value.lower() for token in run if token.kind == "tag"}
                (global_ if ":global" in tags else personal).append(names[-1])
    return ScriptFacts(frozenset(extensions), tuple(personal), tuple(global_))
