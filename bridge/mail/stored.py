"""What the methods of the objects bridge keeps whole in the cache (Identity,
EmailSubmission) share: a standard /get over them, and their msgspec codec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from bridge.jmap import CallContext
from bridge.jmap.standard import GetArgs, get_properties

T = TypeVar("T", bound=msgspec.Struct)


def decode_all(stored: dict[str, bytes], kind: type[T]) -> dict[str, T]:
    decoder = msgspec.json.Decoder(kind)
    return {object_id: decoder.decode(data) for object_id, data in stored.items()}


def get_response(
    ctx: CallContext,
    request: GetArgs,
    load: Callable[[list[str] | None], dict[str, Any]],
    properties: tuple[str, ...],
    state: str,
) -> dict[str, Any]:
    """RFC 8620 §5.1 over what ``load`` finds of the ids asked (all with None): id -> a
    Struct whose fields are the properties."""
    wanted = get_properties(request.properties, properties)
    if request.ids is not None:
        ctx.check_max_objects(len(request.ids), "maxObjectsInGet")
    objects = load(None if request.ids is None else list(dict.fromkeys(request.ids)))
    ids = sorted(objects) if request.ids is None else list(dict.fromkeys(request.ids))
    found = []
    for object_id in ids:
        if object_id in objects:
            whole = msgspec.to_builtins(objects[object_id])
            found.append({key: value for key, value in whole.items() if key in wanted})
    return {
        "accountId": ctx.account_id,
        "state": state,
        "list": found,
        "notFound": [i for i in ids if i not in objects],
    }
