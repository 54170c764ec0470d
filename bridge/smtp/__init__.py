"""SMTP submission for EmailSubmission: one message at a time, as the user."""

from __future__ import annotations

from bridge.smtp.client import (
    Reply,
    Sent,
    SmtpEndpoint,
    SmtpRefused,
    SmtpUnavailable,
    reply_of,
    submit,
)

__all__ = ["Reply", "Sent", "SmtpEndpoint", "SmtpRefused", "SmtpUnavailable", "reply_of", "submit"]
