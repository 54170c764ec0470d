"""JSON Pointer (RFC 6901) with the ``*`` array mapping of RFC 8620 §3.7."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PointerError(ValueError):
    """A JSON Pointer that is malformed or does not select a value."""


def parse_pointer(pointer: str) -> list[str]:
    """The unescaped reference tokens of an RFC 6901 pointer ("" selects the whole value)."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PointerError(f"pointer {pointer!r} must start with '/'")
    return [unescape_token(token) for token in pointer[1:].split("/")]


def unescape_token(token: str) -> str:
    if "~" not in token:
        return token
    # Every "~" must start "~0" or "~1"; "~1" is decoded before "~0" so "~01" means "~1".
    if any(part[:1] not in ("0", "1") for part in token.split("~")[1:]):
        raise PointerError(f"bad escape in pointer token {token!r}")
    return token.replace("~1", "/").replace("~0", "~")


def evaluate(value: Any, tokens: Sequence[str]) -> Any:
    """RFC 6901 evaluation plus JMAP's ``*``, which maps the rest of the pointer over an
    array and flattens results that are themselves arrays."""
    for position, token in enumerate(tokens):
        if isinstance(value, dict):
            if token not in value:
                raise PointerError(f"no property {token!r}")
            value = value[token]
        elif isinstance(value, list | tuple):
            if token == "*":
                rest = tokens[position + 1 :]
                mapped: list[Any] = []
                for item in value:
                    result = evaluate(item, rest)
                    if isinstance(result, list | tuple):
                        mapped.extend(result)
                    else:
                        mapped.append(result)
                return mapped
            value = value[_array_index(token, len(value))]
        else:
            raise PointerError(f"cannot descend into a scalar with {token!r}")
    return value


def _array_index(token: str, length: int) -> int:
    # RFC 6901 §4: decimal digits without leading zeros; "-" never names an existing item.
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise PointerError(f"{token!r} is not an array index")
    index = int(token)
    if index >= length:
        raise PointerError(f"array index {index} is out of range")
    return index
