"""Result references (RFC 8620 §3.7): ``#name`` arguments taken from earlier responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from bridge.jmap.errors import MethodError
from bridge.jmap.pointer import PointerError, evaluate, parse_pointer

REFERENCE_PREFIX = "#"


ResponseLookup = Callable[[str, str], dict[str, Any] | None]


def resolve_references(args: dict[str, Any], lookup: ResponseLookup) -> dict[str, Any]:
    """Arguments with every ``#name`` reference replaced by its value under ``name``.

    ``lookup(call_id, name)`` returns the arguments of the earlier response to that call
    with that name, or None. Returns ``args`` itself when it holds no reference.
    """
    references = [key for key in args if key.startswith(REFERENCE_PREFIX)]
    if not references:
        return args
    both = sorted(key[1:] for key in references if key[1:] in args)
    if both:
        raise MethodError(
            "invalidArguments", f"argument given both plainly and as a reference: {both[0]}"
        )
    resolved = {key: value for key, value in args.items() if not key.startswith(REFERENCE_PREFIX)}
    for key in references:
        resolved[key[1:]] = _resolve_one(key, args[key], lookup)
    return resolved


def _resolve_one(key: str, reference: Any, lookup: ResponseLookup) -> Any:
    if not isinstance(reference, dict) or not all(
        isinstance(reference.get(field), str) for field in ("resultOf", "name", "path")
    ):
        raise MethodError(
            "invalidResultReference", f"{key} must be a ResultReference (resultOf, name, path)"
        )
    call_id, name, path = reference["resultOf"], reference["name"], reference["path"]
    response = lookup(call_id, name)
    if response is None:
        raise MethodError(
            "invalidResultReference", f"{key}: no earlier {name} response to call {call_id!r}"
        )
    try:
        value = evaluate(response, parse_pointer(path))
    except PointerError as exc:
        raise MethodError("invalidResultReference", f"{key}: path {path!r}: {exc}") from None
    # A copy, so a handler that changes its arguments cannot change an earlier response.
    return msgspec.to_builtins(value)
