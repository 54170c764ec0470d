"""Core/echo (RFC 8620 §4)."""

from __future__ import annotations

from typing import Any

from bridge.jmap.engine import CallContext, MethodSpec

CORE_CAPABILITY = "urn:ietf:params:jmap:core"


def echo(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    return args


def echo_method() -> MethodSpec:
    return MethodSpec("Core/echo", CORE_CAPABILITY, echo, account_scoped=False, inline=True)
