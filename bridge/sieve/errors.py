"""What can go wrong with a ManageSieve server, in the kinds callers treat differently.

``str()`` names the command and the response code only: a server's NO text may quote
script content, and is kept on ``SieveCommandFailed.text`` for callers that want it.
"""

from __future__ import annotations


class SieveError(Exception):
    """Base class of every ManageSieve failure."""


class SieveUnavailable(SieveError):
    """No usable session: connect failure, timeout, TLS failure, BYE, or a response
    bridge cannot read. The connection that raised it is closed. ``reason`` says in a few
    words why a connection could not be opened, where that is known."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class SieveAuthFailed(SieveError):
    """The server refused the credentials."""

    def __init__(self, code: str | None = None) -> None:
        super().__init__(f"authentication failed ({code})" if code else "authentication failed")
        self.code = code


class SieveCommandFailed(SieveError):
    """A NO to one command; the session stays usable."""

    def __init__(self, command: str, code: str | None, text: str) -> None:
        super().__init__(f"{command} NO" + (f" ({code})" if code else ""))
        self.command = command
        self.code = code
        self.text = text
