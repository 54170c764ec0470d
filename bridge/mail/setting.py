"""What every /set handler shares: one object's refusal, and trying each object in turn.

Each create, update or destroy succeeds or fails alone (RFC 8620 §5.3); a NO from the
upstream fails that object, with overQuota where the server says [OVERQUOTA].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.imap.errors import CommandFailed
from bridge.jmap import set_error


class Refused(Exception):
    """One object's SetError."""

    def __init__(
        self,
        error_type: str,
        description: str,
        properties: list[str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(description)
        self.error = set_error(error_type, description, properties, **extra)


def attempt(
    action: Callable[..., Any],
    key: str,
    *args: Any,
    done: dict[str, Any],
    failed: dict[str, Any],
) -> None:
    """``done[key] = action(key, *args)``, or the SetError in ``failed[key]``."""
    try:
        done[key] = action(key, *args)
    except Refused as refused:
        failed[key] = refused.error
    except CommandFailed as exc:
        kind = "overQuota" if exc.code == "OVERQUOTA" else "forbidden"
        failed[key] = set_error(kind, f"the upstream refused: {exc.text}")
    except ValueError as exc:
        failed[key] = set_error("forbidden", str(exc))
