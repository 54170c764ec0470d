"""What every /set handler shares: one object's refusal, and trying each object in turn.

Each create, update or destroy succeeds or fails alone (RFC 8620 §5.3); a NO from the
upstream fails that object, with overQuota where the server says [OVERQUOTA], and so does
any error nobody foresaw (serverFail): the objects done before it stay reported, so a
client never retries a create that happened. Only a lost connection, or a handler's own
method-level error, ends the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from bridge.imap.errors import CommandFailed, UpstreamUnavailable
from bridge.jmap import MethodError, set_error
from bridge.jmap.patch import PatchError, apply_patch
from bridge.sieve.errors import SieveUnavailable

log = logging.getLogger("bridge.mail")
# What ends the whole call rather than one object: a handler's method-level error, and a
# lost connection to the upstream (the handler knows what changed before it).
_WHOLE_CALL = (MethodError, UpstreamUnavailable, SieveUnavailable)


class CopyMissed(Exception):
    """A write reached fewer messages than the cache placed the Email in: another client
    moved or expunged one since the request's sync (a UID STORE, MOVE or EXPUNGE of a
    message no longer there is OK in IMAP). The handler syncs and writes again."""


class Refused(Exception):
    """One object's SetError."""

    def __init__(
        self,
        error_type: str,
        description: str | None = None,
        properties: list[str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(description or error_type)
        self.error = set_error(error_type, description, properties, **extra)


def patched(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``current`` with a PatchObject applied (RFC 8620 §5.3); invalidPatch if it cannot be."""
    try:
        return apply_patch(current, patch)
    except PatchError as exc:
        raise Refused("invalidPatch", str(exc), [exc.property]) from None


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
    except _WHOLE_CALL:
        raise
    except ValueError as exc:
        failed[key] = set_error("forbidden", str(exc))
    except Exception:
        log.exception("unexpected error in one object of a /set")
        failed[key] = set_error("serverFail", "an unexpected error stopped this object")


class SetRequest(Protocol):
    create: dict[str, Any] | None
    update: dict[str, Any] | None
    destroy: list[str] | None


def apply_each(
    request: SetRequest,
    create: Callable[[str, Any], Any],
    update: Callable[[str, Any], Any],
    destroy: Callable[[str], Any],
) -> dict[str, Any]:
    """Every create, then every update, then every destroy, each object on its own
    (RFC 8620 §5.3): the created ... notDestroyed members of the /set response."""
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    updated: dict[str, Any] = {}
    not_updated: dict[str, Any] = {}
    destroyed: dict[str, Any] = {}
    not_destroyed: dict[str, Any] = {}
    for creation_id, obj in (request.create or {}).items():
        attempt(create, creation_id, obj, done=created, failed=not_created)
    for object_id, patch in (request.update or {}).items():
        attempt(update, object_id, patch, done=updated, failed=not_updated)
    for object_id in request.destroy or []:
        attempt(destroy, object_id, done=destroyed, failed=not_destroyed)
    return {
        "created": created or None,
        "updated": updated or None,
        "destroyed": list(destroyed) or None,
        # {} rather than the RFC's equally valid null: a map is what every client reads
        # these as, and some crash on null.
        "notCreated": not_created,
        "notUpdated": not_updated,
        "notDestroyed": not_destroyed,
    }
