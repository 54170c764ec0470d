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
    ``bridge.connect_failure``), where that is known.

    ``timed_out`` says the server went silent rather than away: a command it was sent may
    still run there later (a stopped or overloaded server reads it when it wakes), so
    nothing read meanwhile proves the command did not happen."""

    def __init__(self, message: str, *, reason: str | None = None, timed_out: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.timed_out = timed_out


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
