"""What the /get, /changes, /set, /copy, /query and /queryChanges handlers of every data
type share (RFC 8620 §5): the standard argument Structs and the type-independent rules.

A data type with extra arguments subclasses the Struct and adds fields under their exact
JSON names, e.g. ``class MailboxSetArgs(SetArgs): onDestroyRemoveEmails: bool = False``;
unknown arguments stay rejected because that option is inherited. ``kw_only`` is not, so
pass it again to add required and optional fields in any order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import msgspec

from bridge.jmap.errors import MethodError

UnsignedInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
Filter = dict[str, Any]
Comparator = dict[str, Any]


class StandardArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    accountId: str


class GetArgs(StandardArgs, kw_only=True):
    ids: list[str] | None = None
    properties: list[str] | None = None


class ChangesArgs(StandardArgs, kw_only=True):
    sinceState: str
    maxChanges: PositiveInt | None = None


class SetArgs(StandardArgs, kw_only=True):
    ifInState: str | None = None
    create: dict[str, dict[str, Any]] | None = None
    update: dict[str, dict[str, Any]] | None = None
    destroy: list[str] | None = None

    def object_count(self) -> int:
        """The total that maxObjectsInSet limits: creates, updates and destroys together."""
        return sum(len(part) for part in (self.create, self.update, self.destroy) if part)


class CopyArgs(StandardArgs, kw_only=True):
    fromAccountId: str
    ifFromInState: str | None = None
    ifInState: str | None = None
    create: dict[str, dict[str, Any]]
    onSuccessDestroyOriginal: bool = False
    destroyFromIfInState: str | None = None


class QueryArgs(StandardArgs, kw_only=True):
    """``filter`` and ``sort`` are checked by the data type, which knows its conditions."""

    filter: Filter | None = None
    sort: list[Comparator] | None = None
    position: int = 0
    anchor: str | None = None
    anchorOffset: int = 0
    limit: UnsignedInt | None = None
    calculateTotal: bool = False


class QueryChangesArgs(StandardArgs, kw_only=True):
    filter: Filter | None = None
    sort: list[Comparator] | None = None
    sinceQueryState: str
    maxChanges: UnsignedInt | None = None
    upToId: str | None = None
    calculateTotal: bool = False


def get_properties(
    requested: Sequence[str] | None,
    all_properties: Iterable[str],
    always: Iterable[str] = ("id",),
) -> set[str]:
    """The properties a /get returns: all when ``requested`` is None, otherwise those asked
    for plus ``always``; an unknown name is ``invalidArguments`` (RFC 8620 §5.1)."""
    known = set(all_properties)
    if requested is None:
        return known
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise MethodError("invalidArguments", f"unknown properties: {', '.join(unknown)}")
    return {*requested, *always}


def check_in_state(if_in_state: str | None, current_state: str) -> None:
    if if_in_state is not None and if_in_state != current_state:
        raise MethodError("stateMismatch", f"ifInState {if_in_state!r} is not the current state")


def page_query(
    ids: Sequence[str],
    position: int = 0,
    anchor: str | None = None,
    anchor_offset: int = 0,
    limit: int | None = None,
) -> tuple[list[str], int]:
    """The window of the full, sorted result ``ids`` that a /query asked for (RFC 8620 §5.5),
    and the index of its first id, which is the response's ``position``."""
    for name, value in (("position", position), ("anchorOffset", anchor_offset)):
        if not _is_int(value):
            raise MethodError("invalidArguments", f"{name} must be an integer")
    if limit is not None and not (_is_int(limit) and limit >= 0):
        raise MethodError("invalidArguments", "limit must be a non-negative integer")
    if anchor is not None:
        start = max(_index_of(ids, anchor) + anchor_offset, 0)
    elif position < 0:
        start = max(len(ids) + position, 0)
    else:
        start = position
    end = None if limit is None else start + limit
    return list(ids[start:end]), start


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _index_of(ids: Sequence[str], anchor: str) -> int:
    try:
        return ids.index(anchor)
    except ValueError:
        raise MethodError("anchorNotFound", f"anchor {anchor!r} is not in the results") from None
