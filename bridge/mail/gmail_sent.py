"""The sent copy on Gmail: one, not two.

bridge never APPENDs a sent copy itself: the JMAP client makes its Email (a draft, usually)
and files it in Sent, most often with EmailSubmission's onSuccessUpdateEmail, and on most
servers that Email is the only copy. Gmail's SMTP, though, files a copy of every message it
sends in Sent Mail by itself (unless a message with that Message-ID is there already), so
once the client has filed its Email in Sent there are two. Here the client's Email wins,
since the client holds its id and may be told to update it: the copy Gmail filed for this
submission is destroyed, through Email/set (so through the Trash, as every Gmail delete),
only after the client's Email is confirmed in Sent. Where the client does not file its
Email in Sent (it destroys the draft, say), Gmail's copy is the sent copy and stays.

Every step goes through the JMAP methods themselves (Email/query, Email/get, Email/set),
so the answers and the change log are what a client doing the same would see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.jmap import CallContext
from bridge.mail.account import Account
from bridge.mime.headers import Header, find_last

Responses = list[tuple[str, dict[str, Any]]]


def message_id_of(headers: Sequence[Header]) -> str | None:
    field = find_last(headers, "Message-ID")
    value = field.text.strip() if field is not None else ""
    return value or None


class GmailSentCopies:
    """What Gmail's SMTP filed in Sent for the messages one EmailSubmission/set sent."""

    def __init__(self, ctx: CallContext, account: Account) -> None:
        self.ctx = ctx
        self.account = account
        self.sent_id = next((r.id for r in account.cache.mailboxes() if r.role == "sent"), None)
        # The client's Email -> the Emails Gmail filed in Sent when it was sent.
        self.filed: dict[str, set[str]] = {}

    def in_sent(self, message_id: str | None) -> set[str]:
        """The Emails in Sent with this Message-ID, as the cache knows them now."""
        if self.sent_id is None or message_id is None:
            return set()
        query = {"inMailbox": self.sent_id, "header": ["Message-ID", message_id]}
        [(name, result)] = self._call("Email/query", {"filter": query})
        return set(result["ids"]) if name == "Email/query" else set()

    def note_sent(self, email_id: str, message_id: str | None, before: set[str]) -> None:
        """After the SMTP server took the message: find the copy Gmail filed."""
        if self.sent_id is None or message_id is None:
            return
        self.account.sync(force=True)
        filed = self.in_sent(message_id) - before - {email_id}
        if filed:
            self.filed[email_id] = filed

    def drop_duplicates(self) -> Responses:
        """Destroy Gmail's copy of each sent Email the client has filed in Sent; the
        Email/set response, or none when nothing is to go."""
        if not self.filed:
            return []
        [(name, got)] = self._call(
            "Email/get", {"ids": sorted(self.filed), "properties": ["mailboxIds"]}
        )
        if name != "Email/get":
            return []
        doomed = sorted(
            copy
            for email in got["list"]
            if self.sent_id in (email.get("mailboxIds") or {})
            for copy in self.filed[email["id"]]
        )
        return self._call("Email/set", {"destroy": doomed}) if doomed else []

    def _call(self, method: str, args: dict[str, Any]) -> Responses:
        return self.ctx.invoke(method, {"accountId": self.ctx.account_id, **args})
