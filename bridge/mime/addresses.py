"""Best-effort RFC 5322 §3.4 address-list parsing into EmailAddress and EmailAddressGroup.

Written by hand rather than with ``email.utils.getaddresses`` because that drops groups and
changed its treatment of malformed input between Python patch releases. The parser never
fails: each comma-separated run of tokens becomes at most one mailbox, whatever its shape.
Encoded-words are decoded in display names, also inside quoted strings where RFC 2047
forbids them but where many senders put them anyway.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bridge.mime.encodedword import decode_encoded_words

_SPACE = " \t\r\n"
_ATOM_END = _SPACE + '"(<>,:;'


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "space", "atom", "quoted", "comment", "angle", or one of ",", ":", ";"
    text: str  # the content: unescaped for quoted strings, without delimiters
    raw: str  # the token as written


def _scan_quoted(value: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    index = start + 1
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            out.append(value[index + 1])
            index += 2
            continue
        index += 1
        if char == '"':
            break
        out.append(char)
    return "".join(out), index


def _scan_comment(value: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    depth = 0
    index = start
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            out.append(value[index + 1])
            index += 2
            continue
        index += 1
        if char == "(":
            depth += 1
            if depth == 1:
                continue
        elif char == ")":
            depth -= 1
            if depth == 0:
                break
        out.append(char)
    return "".join(out), index


def _scan_angle(value: str, start: int) -> int:
    index = start + 1
    while index < len(value):
        char = value[index]
        if char == '"':
            index = _scan_quoted(value, index)[1]
            continue
        if char == "(":
            index = _scan_comment(value, index)[1]
            continue
        index += 1
        if char == ">":
            break
    return index


def _tokens(value: str) -> Iterator[_Token]:
    index = 0
    while index < len(value):
        char = value[index]
        start = index
        if char in _SPACE:
            while index < len(value) and value[index] in _SPACE:
                index += 1
            yield _Token("space", " ", value[start:index])
        elif char == '"':
            text, index = _scan_quoted(value, index)
            yield _Token("quoted", text, value[start:index])
        elif char == "(":
            text, index = _scan_comment(value, index)
            yield _Token("comment", text, value[start:index])
        elif char == "<":
            index = _scan_angle(value, index)
            inner = value[start + 1 : index - 1 if value[index - 1] == ">" else index]
            yield _Token("angle", inner, value[start:index])
        elif char in ",:;":
            index += 1
            yield _Token(char, char, char)
        elif char == ">":
            index += 1  # a stray closing bracket means nothing
        else:
            while index < len(value) and value[index] not in _ATOM_END:
                if value[index] == "[":  # a domain literal may hold ":" (IPv6)
                    close = value.find("]", index)
                    index = len(value) if close == -1 else close + 1
                else:
                    index += 1
            yield _Token("atom", value[start:index], value[start:index])


def _clean(text: str) -> str | None:
    text = unicodedata.normalize("NFC", decode_encoded_words(text).strip())
    return text or None


def _phrase(tokens: list[_Token]) -> str | None:
    parts: list[str] = []
    for token in tokens:
        if token.kind in ("atom", "quoted"):
            parts.append(token.text)
        elif parts and parts[-1] != " ":
            parts.append(" ")
    return _clean("".join(parts))


def _addr_spec(tokens: list[_Token]) -> str:
    return "".join(token.raw for token in tokens if token.kind in ("atom", "quoted"))


def _angle_address(inner: str) -> str:
    tokens = list(_tokens(inner))
    colons = [index for index, token in enumerate(tokens) if token.kind == ":"]
    if colons:  # obsolete source route: <@relay1,@relay2:user@host>
        tokens = tokens[colons[-1] + 1 :]
    return _addr_spec(tokens).strip()


def _comment_after(tokens: list[_Token], index: int) -> str | None:
    for token in tokens[index + 1 :]:
        if token.kind == "comment":
            return _clean(token.text)
        if token.kind != "space":
            return None
    return None


def _mailbox(tokens: list[_Token]) -> dict[str, Any] | None:
    for index, token in enumerate(tokens):
        if token.kind == "angle":
            name = _phrase(tokens[:index]) or _comment_after(tokens, index)
            return {"name": name, "email": _angle_address(token.text)}
    words = [index for index, token in enumerate(tokens) if token.kind in ("atom", "quoted")]
    if not words:
        return None
    # A missing <> around the address ("Jane Doe jane@example.com") still has a readable
    # shape: the last space-separated chunk with an "@" is the address.
    chunk_start = words[-1]
    while chunk_start > 0 and tokens[chunk_start - 1].kind in ("atom", "quoted"):
        chunk_start -= 1
    last_chunk = tokens[chunk_start : words[-1] + 1]
    name = None
    if chunk_start > words[0] and "@" in _addr_spec(last_chunk):
        name = _phrase(tokens[:chunk_start])
        email = _addr_spec(last_chunk)
    else:
        email = _addr_spec(tokens)
    return {"name": name or _comment_after(tokens, words[-1]), "email": email}


# Most address fields are plain: ``Name <local@domain>``, ``"Name" <local@domain>`` or
# ``local@domain``, comma separated, with no escape, comment, group or route. Those parse
# without the tokenizer, to the same result (a list view parses two such fields per message).
_WORD = r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+"
_ADDRESS = rf"{_WORD}(?:\.{_WORD})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_NAME_ATOM = r'[^\s"(),:;<>\[\]\\]+'  # what the tokenizer reads as one atom, less "[\"
_PLAIN_MAILBOX = re.compile(
    rf'[ \t]*(?:(?:((?:{_NAME_ATOM}[ \t]+)*{_NAME_ATOM})|"([^"\\]*)")?[ \t]*<({_ADDRESS})>'
    rf"|({_ADDRESS}))[ \t]*"
)


def _plain_name(text: str) -> str | None:
    if text.isascii() and "=?" not in text:
        return text.strip() or None
    return _clean(text)


def _plain_addresses(value: str) -> list[dict[str, Any]] | None:
    """The mailboxes of a plain address-list, or None when it is not one."""
    addresses = []
    for part in value.split(","):
        match = _PLAIN_MAILBOX.fullmatch(part)
        if match is None:
            return None
        atoms, quoted, angled, bare = match.groups()
        if atoms is not None:
            name = _plain_name(" ".join(atoms.split()))
        else:
            name = _plain_name(quoted) if quoted is not None else None
        addresses.append({"name": name, "email": angled or bare})
    return addresses


def parse_grouped_addresses(value: str) -> list[dict[str, Any]]:
    """The GroupedAddresses form of an unfolded address-list (RFC 8621 §4.1.2.4)."""
    plain = _plain_addresses(value)
    if plain is not None:
        return [{"name": None, "addresses": plain}]
    return _parse_grouped(value)


def _parse_grouped(value: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []  # consecutive mailboxes outside any group
    group: dict[str, Any] | None = None
    pending: list[_Token] = []

    def take_mailbox() -> None:
        mailbox = _mailbox(pending)
        pending.clear()
        if mailbox is not None:
            (group["addresses"] if group is not None else loose).append(mailbox)

    def close_loose() -> None:
        if loose:
            groups.append({"name": None, "addresses": list(loose)})
            loose.clear()

    for token in _tokens(value):
        if token.kind == ",":
            take_mailbox()
        elif token.kind == ";":
            take_mailbox()
            if group is not None:
                groups.append(group)
                group = None
        elif token.kind == ":" and not any(t.kind == "angle" for t in pending):
            name = _phrase(pending)
            pending.clear()
            if group is not None:  # groups do not nest; the unterminated one ends here
                groups.append(group)
            close_loose()
            group = {"name": name, "addresses": []}
        elif token.kind != ":":
            pending.append(token)
    take_mailbox()
    if group is not None:
        groups.append(group)
    close_loose()
    return groups


def parse_addresses(value: str) -> list[dict[str, Any]]:
    """The Addresses form: every mailbox, groups flattened (RFC 8621 §4.1.2.3)."""
    return [address for group in parse_grouped_addresses(value) for address in group["addresses"]]
