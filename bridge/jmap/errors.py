"""The three levels of JMAP error: the whole request, one method call, one object in a /set."""

from __future__ import annotations

from typing import Any

PROBLEM_PREFIX = "urn:ietf:params:jmap:error:"


class RequestError(Exception):
    """The request as a whole is rejected with an HTTP error and an RFC 7807 problem body.

    ``type`` is the short name ("notJSON", "notRequest", "unknownCapability", "limit");
    ``limit`` names the limit applied and is required when ``type`` is "limit".
    """

    def __init__(self, type: str, status: int = 400, detail: str = "", limit: str | None = None):
        super().__init__(detail or type)
        self.type = type
        self.status = status
        self.detail = detail
        self.limit = limit

    def to_problem(self) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": PROBLEM_PREFIX + self.type,
            "status": self.status,
            "detail": self.detail,
        }
        if self.limit is not None:
            problem["limit"] = self.limit
        return problem


class MethodError(Exception):
    """One method call fails; the engine turns this into an ``["error", {...}, callId]``.

    Keyword arguments become extra properties of the error object, for the error types
    that define some.
    """

    def __init__(self, type: str, description: str | None = None, **extra: Any):
        super().__init__(description or type)
        self.type = type
        self.description = description
        self.extra = extra

    def to_response(self) -> dict[str, Any]:
        response: dict[str, Any] = {"type": self.type}
        if self.description is not None:
            response["description"] = self.description
        response.update(self.extra)
        return response


def set_error(
    type: str,
    description: str | None = None,
    properties: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A SetError object for notCreated/notUpdated/notDestroyed.

    ``extra`` carries the properties some types define, such as ``existingId`` for
    alreadyExists or ``maxRecipients`` for tooManyRecipients.
    """
    error: dict[str, Any] = {"type": type}
    if description is not None:
        error["description"] = description
    if properties is not None:
        error["properties"] = list(properties)
    error.update(extra)
    return error


class SetError(Exception):
    """Raised while handling one object of a /set or /copy, so the handler's loop can catch
    it and file ``to_dict()`` under that object's id without aborting the method."""

    def __init__(
        self,
        type: str,
        description: str | None = None,
        properties: list[str] | None = None,
        **extra: Any,
    ):
        super().__init__(description or type)
        self.type = type
        self.description = description
        self.properties = properties
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return set_error(self.type, self.description, self.properties, **self.extra)
