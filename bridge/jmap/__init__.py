"""The RFC 8620 request engine: parsing, method dispatch, result references, patches and
the helpers every data type's standard methods share. Pure: no I/O."""

from __future__ import annotations

from bridge.jmap.args import decode_args
from bridge.jmap.core import CORE_CAPABILITY, echo_method
from bridge.jmap.engine import (
    CallContext,
    Engine,
    Handler,
    MethodResult,
    MethodSpec,
    check_json_depth,
)
from bridge.jmap.errors import MethodError, RequestError, SetError, set_error
from bridge.jmap.limits import CoreLimits, RequestLimits, check_max_objects
from bridge.jmap.patch import PatchError, apply_patch, top_level_properties
from bridge.jmap.types import Invocation, Request, is_valid_id

__all__ = [
    "CORE_CAPABILITY",
    "CallContext",
    "CoreLimits",
    "Engine",
    "Handler",
    "Invocation",
    "MethodError",
    "MethodResult",
    "MethodSpec",
    "PatchError",
    "Request",
    "RequestError",
    "RequestLimits",
    "SetError",
    "apply_patch",
    "check_json_depth",
    "check_max_objects",
    "decode_args",
    "echo_method",
    "is_valid_id",
    "set_error",
    "top_level_properties",
]
