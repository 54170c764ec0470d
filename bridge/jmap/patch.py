"""PatchObject application (RFC 8620 §5.3, the *update* argument of /set)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

from bridge.jmap.pointer import PointerError, unescape_token


class PatchError(ValueError):
    """The patch is invalid (an ``invalidPatch`` SetError); ``property`` is the offending key."""

    def __init__(self, property: str, reason: str):
        super().__init__(f"{property}: {reason}")
        self.property = property
        self.reason = reason


def _tokens(key: str) -> tuple[str, ...]:
    # Patch keys are pointers with the leading "/" left implicit.
    try:
        return tuple(unescape_token(token) for token in key.split("/"))
    except PointerError as exc:
        raise PatchError(key, str(exc)) from None


def top_level_properties(patch: Mapping[str, Any]) -> set[str]:
    """The names of the object's own properties that ``patch`` touches."""
    return {_tokens(key)[0] for key in patch}


def apply_patch(
    obj: Mapping[str, Any],
    patch: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A new object with ``patch`` applied; ``obj`` is left untouched.

    A null value resets a property of the object itself to its default: the value in
    ``defaults``, else null, the default of every nullable property. A null deeper down
    removes the key, as for ``keywords/$seen``. Either way a key that is not there stays
    absent. The caller still validates the result against its type.
    """
    parsed = sorted((_tokens(key), key) for key in patch)
    for (shorter, shorter_key), (longer, longer_key) in itertools.pairwise(parsed):
        # Sorted tuples put every pointer directly before the pointers it is a prefix of.
        if longer[: len(shorter)] == shorter:
            raise PatchError(longer_key, f"overlaps the patch of {shorter_key}")
    result = dict(obj)
    copied = {id(result)}
    for tokens, key in parsed:
        parent = result
        for depth, token in enumerate(tokens[:-1]):
            child = parent.get(token)
            if isinstance(child, list):
                raise PatchError(key, "points inside an array; replace the whole array")
            if not isinstance(child, dict):
                where = "/".join(tokens[: depth + 1])
                raise PatchError(key, f"{where} is not an existing object")
            if id(child) not in copied:
                child = dict(child)
                copied.add(id(child))
                parent[token] = child
            parent = child
        name = tokens[-1]
        value = patch[key]
        if value is not None:
            parent[name] = value
        elif name not in parent:
            continue
        elif len(tokens) == 1:
            parent[name] = copy.deepcopy(defaults[name]) if defaults and name in defaults else None
        else:
            del parent[name]
    return result
