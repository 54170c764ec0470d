"""The capabilities bridge offers, and what each says in the Session object."""

from __future__ import annotations

from typing import Any

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
QUOTA = "urn:ietf:params:jmap:quota"

# RFC 8621 §4.4.2: the sorts Email/query takes. The header sorts (sentAt, from, to,
# subject) work within one inMailbox, where the upstream's SORT does them.
EMAIL_SORT_OPTIONS = [
    "receivedAt", "size", "sentAt", "from", "to", "subject", "hasKeyword",
    "allInThreadHaveKeyword", "someInThreadHaveKeyword",
]  # fmt: skip


def session_capabilities(quota: bool) -> dict[str, dict[str, Any]]:
    """Capabilities beyond core, as the Session object lists them (RFC 8621 §1.3.1)."""
    capabilities: dict[str, dict[str, Any]] = {MAIL: {}}
    if quota:
        capabilities[QUOTA] = {}  # RFC 9425 §2: no session-level properties
    return capabilities


def account_capabilities(quota: bool) -> dict[str, dict[str, Any]]:
    capabilities: dict[str, dict[str, Any]] = {
        MAIL: {
            "maxMailboxesPerEmail": None,
            "maxMailboxDepth": None,
            "maxSizeMailboxName": 255,
            "maxSizeAttachmentsPerEmail": 50_000_000,
            "emailQuerySortOptions": EMAIL_SORT_OPTIONS,
            "mayCreateTopLevelMailbox": True,
        }
    }
    if quota:
        capabilities[QUOTA] = {}  # RFC 9425 §2: an empty object
    return capabilities
