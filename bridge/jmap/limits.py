"""The limits advertised in the ``urn:ietf:params:jmap:core`` capability, and bridge's own
limits on what one request may ask (README: "Limits")."""

from __future__ import annotations

import re
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


class RequestLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits of bridge's own, beyond the capability object's: what one request may ask.

    A client that passes one gets the RFC's error before any work is done (a ``limit``
    request error, or ``unsupportedFilter`` for the call), never a server failure.
    """

    # Nesting of arrays and objects in a request. JMAP needs about 20 (a deep filter);
    # deeper input only costs recursion: msgspec's decoder gives up near 1,000 levels with
    # a RecursionError, and every walk over the arguments recurses too.
    max_json_depth: int = 64
    # A /query filter: FilterOperators and FilterConditions in all, operators nested, and
    # octets of text in its conditions. Each text condition is a SEARCH upstream in each
    # folder it may match in (an OR of 10,000 cost Dovecot 30 s of CPU, and went on after
    # the client had gone), and a 1 MB search text made Dovecot drop the connection.
    max_filter_nodes: int = 128
    max_filter_depth: int = 8
    max_filter_text: int = 8192
    # The header section of a message Email/set composes, in octets: Postfix's own
    # header_size_limit (102,400) would cut a longer one on its way out anyway.
    max_header_size: int = 102_400


# Quoted strings (their brackets are text), and runs of brackets, in raw JSON.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_BRACKET_RUNS = re.compile(rb"\[+|\]+")
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_FOLD_BRACES = bytes.maketrans(b"{}", b"[]")
_PEEL_PASSES = 8


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether JSON ``body`` nests arrays and objects more than ``limit`` deep, read from
    the raw bytes (no decoder recursion): strings are dropped, braces folded into brackets,
    innermost pairs peeled off a few times (wide input shrinks fast), then the rest is
    counted run by run. Linear: 0.1-0.9 s for 10 MB built to be slow, microseconds for a
    usual request. Unbalanced input is left to the decoder to refuse."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", body).translate(_FOLD_BRACES, _NOT_BRACKETS)
    peeled = 0
    while peeled < _PEEL_PASSES and brackets:
        # Each pass lowers every remaining value's height by exactly one.
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
        peeled += 1
    if peeled > limit:
        return True
    depth = 0
    for run in _BRACKET_RUNS.finditer(brackets):
        length = run.end() - run.start()
        if brackets[run.start()] == ord("["):
            depth += length
            if depth + peeled > limit:
                return True
        else:
            depth = max(0, depth - length)
    return False


def check_filter_size(filter_: Any, limits: RequestLimits) -> None:
    """``unsupportedFilter`` (RFC 8620 §5.5: valid, but more than this server will run) for
    a filter past ``limits``; walked without recursion. Types are the handler's business."""
    nodes = text = 0
    pending: list[tuple[Any, int]] = [(filter_, 0)]
    while pending:
        node, depth = pending.pop()
        if not isinstance(node, dict):
            continue
        nodes += 1
        if nodes > limits.max_filter_nodes:
            raise MethodError(
                "unsupportedFilter", f"more than {limits.max_filter_nodes} filter conditions"
            )
        children = node.get("conditions") if "operator" in node else None
        if isinstance(children, list):
            if depth >= limits.max_filter_depth:
                raise MethodError(
                    "unsupportedFilter", f"filter operators nested over {limits.max_filter_depth}"
                )
            pending.extend((child, depth + 1) for child in children)
            continue
        text += sum(_text_size(value) for value in node.values())
        if text > limits.max_filter_text:
            raise MethodError(
                "unsupportedFilter", f"more than {limits.max_filter_text} octets of filter text"
            )


def _text_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, list):
        return sum(len(v.encode("utf-8", "surrogatepass")) for v in value if isinstance(v, str))
    return 0
