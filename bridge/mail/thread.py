"""Thread/get and Thread/changes (RFC 8621 §3), straight from the cache."""

from __future__ import annotations

from typing import Any

from bridge.jmap import CallContext, MethodError, decode_args
from bridge.jmap.standard import ChangesArgs, GetArgs
from bridge.mail.common import account_of, changes_response
from bridge.store.journal import THREAD

PROPERTIES = ("id", "emailIds")


def thread_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(GetArgs, args)
    if request.properties is not None:
        unknown = [name for name in request.properties if name not in PROPERTIES]
        if unknown:
            raise MethodError("invalidArguments", f"unknown properties: {', '.join(unknown)}")
    wanted = set(PROPERTIES if request.properties is None else request.properties) | {"id"}
    account = account_of(ctx)
    account.sync()
    # Before the threads are read (see bridge.mail.mailbox.synced_tree).
    state = account.cache.encode_state(account.cache.state(THREAD))
    ids = request.ids
    if ids is None:
        # All of them, where they fit in one answer (RFC 8620 §5.1).
        ids = sorted({thread for _, thread, *_ in account.cache.email_facts()})
    ctx.check_max_objects(len(ids), "maxObjectsInGet")
    threads = account.cache.thread_emails(ids)
    found = []
    for thread_id in dict.fromkeys(ids):
        if thread_id in threads:
            thread = {"id": thread_id, "emailIds": threads[thread_id]}
            found.append({key: value for key, value in thread.items() if key in wanted})
    return {
        "accountId": ctx.account_id,
        "state": state,
        "list": found,
        "notFound": [t for t in dict.fromkeys(ids) if t not in threads],
    }


def thread_changes(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(ChangesArgs, args)
    account = account_of(ctx)
    account.sync()
    response, _ = changes_response(account.cache, THREAD, request, ctx.account_id)
    return response
