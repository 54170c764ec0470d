"""What can go wrong upstream, in three kinds callers treat differently.

``str()`` of every exception here names only the command and the response code, never
arguments: those may be private (mailbox names, search text) and a server's NO text often
echoes them. The text of a NO/BAD stays on ``CommandFailed.text`` for callers that want it.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """Base class of every failure that comes from the upstream IMAP server."""


class UpstreamUnavailable(UpstreamError):
    """The connection is dead or unusable: connect failure, socket error, timeout, BYE,
    or a response bridge cannot read. The connection that raised it is marked broken.
    ``reason`` says in a few words why a connection could not be opened (see
    ``bridge.connect_failure``), where that is known."""

    # Whether the server went silent rather than away (UpstreamTimeout).
    timed_out = False

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class UpstreamTimeout(UpstreamUnavailable):
    """A command got no answer within its time (the command timeout, or what was left of
    the request's deadline), or a sync this request waited for did not. The server went
    silent rather than away: a command it was sent may still run there later (a stopped or
    overloaded server reads it when it wakes), so nothing read meanwhile proves the
    command did not happen; whether it took effect shows at the next sync."""

    timed_out = True


class DeadlinePassed(UpstreamUnavailable):
    """The request's deadline passed before the upstream was asked: nothing was sent."""


class AuthFailed(UpstreamError):
    """The server refused the credentials."""

    def __init__(self, code: str | None = None) -> None:
        super().__init__(f"authentication failed [{code}]" if code else "authentication failed")
        self.code = code


class CommandFailed(UpstreamError):
    """A tagged NO or BAD. The connection stays usable."""

    def __init__(self, command: str, status: str, code: str | None, text: str) -> None:
        label = f"{command} {status}" + (f" [{code}]" if code else "")
        super().__init__(label)
        self.command = command
        self.status = status
        self.code = code
        self.text = text
