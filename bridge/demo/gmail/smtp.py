"""Gmail's SMTP side for the emulation: what the Dovecot submission service of
``gmail_dovecot(users, relay_port=...)`` relays arrives here.

Gmail files a copy of every message sent through smtp.gmail.com in the sender's Sent Mail
by itself ("Gmail automatically saves a copy in Sent", Google's "Use IMAP to check Gmail on
other email clients": so clients should not save one too). This receiver does the same
through the front, so the copy is in ``[Gmail]/Sent Mail`` and All Mail as Gmail would
have it, read and labelled \\Sent; and it delivers to the emulation's other users' INBOX
the same way. Every other recipient is refused, as ``LocalDelivery`` does. Not emulated:
Gmail's merging of a message sent to oneself into one copy with both labels.
"""

from __future__ import annotations

import contextlib
import logging

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from bridge.demo.gmail.front import GmailFront
from bridge.demo.process import free_port
from bridge.demo.relay import LocalDelivery

log = logging.getLogger("bridge.demo")

SENT_MAIL = "[Gmail]/Sent Mail"


class GmailSmtp(LocalDelivery):
    """``with GmailSmtp(front, domain, port) as smtp``: relayed mail from ``user@domain``
    is filed in that user's Sent Mail, and reaches each ``user@domain`` recipient's INBOX."""

    def __init__(self, front: GmailFront, domain: str, port: int | None = None) -> None:
        super().__init__(front.dovecot, domain, front.dovecot.users, port or free_port())
        self.front = front

    def deliver(self, sender: str, users: list[str], message: bytes) -> str | None:
        failed = [user for user in users if not self._append(user, "INBOX", message, ())]
        author = self.user_for(sender)
        if author is not None and not self._append(author, SENT_MAIL, message, (b"\\Seen",)):
            failed.append(f"{author}'s Sent Mail")
        return ", ".join(failed) or None

    def _append(self, user: str, folder: str, message: bytes, flags: tuple[bytes, ...]) -> bool:
        client = IMAPClient(self.front.host, port=self.front.port, ssl=False)
        try:
            client.login(user, self.front.dovecot.users[user])
            client.append(folder, message, flags=flags)
            return True
        except IMAPClientError as exc:
            log.warning("emulated Gmail SMTP could not file a message for %s: %s", user, exc)
            return False
        finally:
            with contextlib.suppress(Exception):
                client.logout()
