"""The limits advertised in the ``urn:ietf:params:jmap:core`` capability."""

from __future__ import annotations

from typing import Any

import msgspec

from bridge.jmap.errors import MethodError

DEFAULT_COLLATIONS = ("i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap")


class CoreLimits(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Attributes are snake_case; the capability object uses the camelCase names."""

    max_size_upload: int = 50_000_000
    max_concurrent_upload: int = 4
    max_size_request: int = 10_000_000
    max_concurrent_requests: int = 4
    max_calls_in_request: int = 64
    max_objects_in_get: int = 1000
    max_objects_in_set: int = 1000
    collation_algorithms: tuple[str, ...] = DEFAULT_COLLATIONS

    def to_capability(self) -> dict[str, Any]:
        capability: dict[str, Any] = msgspec.to_builtins(self)
        capability["collationAlgorithms"] = list(self.collation_algorithms)
        return capability

    def value(self, limit_name: str) -> int:
        """The value of a numeric limit given its capability name, e.g. "maxObjectsInGet"."""
        attribute = _ATTRIBUTES.get(limit_name)
        if attribute is None or attribute == "collation_algorithms":
            raise KeyError(limit_name)
        number: int = getattr(self, attribute)
        return number


_ATTRIBUTES = {field.encode_name: field.name for field in msgspec.structs.fields(CoreLimits)}


def check_max_objects(limits: CoreLimits, count: int, limit_name: str) -> None:
    """Reject a /get or /set call that names more objects than ``limit_name`` allows."""
    maximum = limits.value(limit_name)
    if count > maximum:
        raise MethodError("requestTooLarge", f"{count} objects exceed {limit_name} ({maximum})")
