"""RFC 8621 method handlers, and the table of every method bridge serves."""

from __future__ import annotations

from bridge.jmap import MethodSpec
from bridge.jmap.core import echo_method
from bridge.mail.capabilities import MAIL
from bridge.mail.common import translating_upstream_errors
from bridge.mail.mailbox import mailbox_changes, mailbox_get, mailbox_query, mailbox_query_changes
from bridge.mail.mailbox_set import mailbox_set


def registered_methods() -> list[MethodSpec]:
    """Every method a client may call; any other name answers unknownMethod."""
    handlers = {
        "Mailbox/get": mailbox_get,
        "Mailbox/changes": mailbox_changes,
        "Mailbox/query": mailbox_query,
        "Mailbox/queryChanges": mailbox_query_changes,
        "Mailbox/set": mailbox_set,
    }
    return [echo_method()] + [
        MethodSpec(name, MAIL, translating_upstream_errors(handler))
        for name, handler in handlers.items()
    ]
