"""The capabilities bridge offers, and what each says in the Session object."""

from __future__ import annotations

from typing import Any

import msgspec

from bridge.jmap import CoreLimits

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
QUOTA = "urn:ietf:params:jmap:quota"
SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
BLOB = "urn:ietf:params:jmap:blob"  # RFC 9404
# RFC 9404 §4: servers MUST allow at least 64 data sources per Blob/upload creation.
MAX_DATA_SOURCES = 64
# From the HTTP Digest Algorithm Values registry, "sha" first as RFC 9404 asks.
DIGEST_ALGORITHMS = ("sha", "sha-256", "sha-512")
BLOB_LOOKUP_TYPES = ("Mailbox", "Thread", "Email")
# RFC 8887: offered always; a session-level capability, not an account's.
WEBSOCKET = "urn:ietf:params:jmap:websocket"


class Features(msgspec.Struct, frozen=True, kw_only=True):
    """What the upstream offers beyond IMAP mail. Settings say so: the session is built
    without asking the upstream, and a capability must not come and go with its mood."""

    quota: bool = False  # IMAP QUOTA (RFC 9208) -> RFC 9425 Quota/*
    submission: bool = False  # SMTP submission -> Identity/*, EmailSubmission/*
    vacation: bool = False  # ManageSieve (RFC 5804) -> VacationResponse/*


# RFC 8621 §4.4.2: the sorts Email/query takes. The header sorts (sentAt, from, to,
# subject) work within one inMailbox, where the upstream's SORT does them.
EMAIL_SORT_OPTIONS = [
    "receivedAt", "size", "sentAt", "from", "to", "subject", "hasKeyword",
    "allInThreadHaveKeyword", "someInThreadHaveKeyword",
]  # fmt: skip


def session_capabilities(features: Features) -> dict[str, dict[str, Any]]:
    """Capabilities beyond core, as the Session object lists them (RFC 8621 §1.3)."""
    return {name: {} for name in account_capabilities(features)}


def account_capabilities(features: Features) -> dict[str, dict[str, Any]]:
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
    capabilities[BLOB] = {
        # Blob/upload makes what an upload makes, so it has the same limit.
        "maxSizeBlobSet": CoreLimits().max_size_upload,
        "maxDataSources": MAX_DATA_SOURCES,
        "supportedTypeNames": list(BLOB_LOOKUP_TYPES),
        "supportedDigestAlgorithms": list(DIGEST_ALGORITHMS),
    }
    if features.quota:
        capabilities[QUOTA] = {}  # RFC 9425 §2: an empty object
    if features.submission:
        # Sending is immediate (no FUTURERELEASE upstream) and adds no SMTP extensions.
        capabilities[SUBMISSION] = {"maxDelayedSend": 0, "submissionExtensions": {}}
    if features.vacation:
        capabilities[VACATION] = {}
    return capabilities
