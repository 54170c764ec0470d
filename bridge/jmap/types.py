"""The Request and Response objects (RFC 8620 §3.3, §3.4) and the Id syntax."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

# name, arguments, method call id
Invocation = tuple[str, dict[str, Any], str]

_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")


def is_valid_id(value: object) -> bool:
    """True for a string that is a syntactically valid JMAP Id (RFC 8620 §1.2)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


class Request(msgspec.Struct):
    """A decoded Request object; properties it does not define are ignored, as required."""

    using: list[str]
    methodCalls: list[Invocation]
    # UNSET rather than None: the response carries createdIds only if the request had it.
    createdIds: dict[str, str] | UnsetType = UNSET


request_decoder = msgspec.json.Decoder(Request)


def build_response(
    method_responses: list[Invocation],
    created_ids: dict[str, str] | None,
    session_state: str,
) -> dict[str, Any]:
    """The Response object as plain data; pass ``created_ids=None`` to leave it out."""
    response: dict[str, Any] = {
        "methodResponses": [list(invocation) for invocation in method_responses]
    }
    if created_ids is not None:
        response["createdIds"] = created_ids
    response["sessionState"] = session_state
    return response
