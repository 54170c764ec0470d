"""Typed decoding of method arguments."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from bridge.jmap.errors import MethodError

T = TypeVar("T")


def decode_args(struct_type: type[T], args: dict[str, Any]) -> T:
    """Convert a call's (already reference-resolved) arguments to ``struct_type``.

    Declare argument Structs with ``forbid_unknown_fields=True`` and the exact camelCase
    argument names: RFC 8620 §3.6.2 requires an unknown argument to be rejected, and a
    failure here becomes ``invalidArguments`` whose description names the field.
    Conversion is strict, so "5" is not accepted for an Int nor 1 for a Boolean.
    """
    try:
        return msgspec.convert(args, type=struct_type)
    except msgspec.ValidationError as exc:
        raise MethodError("invalidArguments", _describe(exc)) from None


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec locates the problem as "$.field[0]"; clients know these as arguments.
    return str(exc).replace("`$.", "`").replace(" - at `$`", "")
