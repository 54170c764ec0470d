"""RFC 8621 method handlers, and the table of every method bridge serves."""

from __future__ import annotations

import functools

from bridge.jmap import MethodSpec
from bridge.jmap.core import CORE_CAPABILITY, echo_method
from bridge.mail.blob_methods import blob_copy, blob_get, blob_lookup, blob_upload
from bridge.mail.capabilities import BLOB, MAIL, QUOTA, SUBMISSION, VACATION, Features
from bridge.mail.common import Handler, translating_upstream_errors
from bridge.mail.email_get import email_changes, email_get, has_attachment_of
from bridge.mail.email_query import email_query, email_query_changes
from bridge.mail.email_set import email_copy, email_import, email_set
from bridge.mail.identity import identity_changes, identity_get, identity_set
from bridge.mail.mailbox import mailbox_changes, mailbox_get, mailbox_query, mailbox_query_changes
from bridge.mail.mailbox_set import mailbox_set
from bridge.mail.parse import email_parse
from bridge.mail.push_subscription import PushOutbox, push_subscription_methods
from bridge.mail.quota import quota_changes, quota_get, quota_query, quota_query_changes
from bridge.mail.snippet import search_snippet_get
from bridge.mail.submission import (
    submission_changes,
    submission_get,
    submission_query,
    submission_query_changes,
)
from bridge.mail.submission_set import submission_set
from bridge.mail.thread import thread_changes, thread_get
from bridge.mail.vacation import vacation_get, vacation_set

# Methods that only read the cache once it is synced: a request of nothing else may run on
# the event loop (bridge.inline; one that needs the upstream after all moves to a worker).
READ_FROM_CACHE = frozenset({
    "Mailbox/get", "Mailbox/changes", "Mailbox/query", "Mailbox/queryChanges",
    "Email/get", "Email/changes", "Email/query", "Email/queryChanges",
    "Thread/get", "Thread/changes",
})  # fmt: skip


def registered_methods(features: Features, push: PushOutbox | None = None) -> list[MethodSpec]:
    """Every method a client may call; any other name answers unknownMethod. PushSubscription/*
    need ``push``, the delivery side."""
    handlers: dict[str, Handler] = {
        "Mailbox/get": mailbox_get,
        "Mailbox/changes": mailbox_changes,
        "Mailbox/query": mailbox_query,
        "Mailbox/queryChanges": mailbox_query_changes,
        "Mailbox/set": mailbox_set,
        "Email/get": email_get,
        "Email/changes": email_changes,
        "Email/parse": email_parse,
        "Email/set": email_set,
        "Email/import": email_import,
        "Email/copy": email_copy,
        "Email/query": functools.partial(email_query, has_attachment=has_attachment_of),
        "Email/queryChanges": functools.partial(
            email_query_changes, has_attachment=has_attachment_of
        ),
        "Thread/get": thread_get,
        "SearchSnippet/get": search_snippet_get,
        "Thread/changes": thread_changes,
    }
    methods = [echo_method(), *_under(MAIL, handlers)]
    methods += _under(CORE_CAPABILITY, {"Blob/copy": blob_copy})
    methods += _under(BLOB, {
        "Blob/upload": blob_upload,
        "Blob/get": blob_get,
        "Blob/lookup": blob_lookup,
    })  # fmt: skip
    if features.quota:
        methods += _under(QUOTA, {
            "Quota/get": quota_get,
            "Quota/changes": quota_changes,
            "Quota/query": quota_query,
            "Quota/queryChanges": quota_query_changes,
        })  # fmt: skip
    if features.submission:
        methods += _under(SUBMISSION, {
            "Identity/get": identity_get,
            "Identity/changes": identity_changes,
            "Identity/set": identity_set,
            "EmailSubmission/get": submission_get,
            "EmailSubmission/changes": submission_changes,
            "EmailSubmission/query": submission_query,
            "EmailSubmission/queryChanges": submission_query_changes,
            "EmailSubmission/set": submission_set,
        })  # fmt: skip
    if features.vacation:
        methods += _under(VACATION, {
            "VacationResponse/get": vacation_get,
            "VacationResponse/set": vacation_set,
        })  # fmt: skip
    if push is not None:
        methods += push_subscription_methods(push)
    return methods


def _under(capability: str, handlers: dict[str, Handler]) -> list[MethodSpec]:
    """Methods of one capability: without it in "using" they answer unknownMethod."""
    return [
        MethodSpec(
            name, capability, translating_upstream_errors(handler), inline=name in READ_FROM_CACHE
        )
        for name, handler in handlers.items()
    ]
