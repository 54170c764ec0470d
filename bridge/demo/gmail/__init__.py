"""A Gmail-shaped IMAP server for tests: a real Dovecot holds the mail, a small front on
127.0.0.1 speaks the part of Gmail's dialect bridge meets.

Google documents the dialect in "IMAP Extensions" (developers.google.com/gmail/imap/
imap-extensions): the X-GM-EXT-1 capability, SPECIAL-USE folders under ``[Gmail]/``,
X-GM-MSGID and X-GM-THRID (64-bit numbers, in FETCH and SEARCH), X-GM-LABELS (FETCH, STORE,
SEARCH) and SEARCH X-GM-RAW (Gmail's web search syntax).

How the front maps Gmail's model onto Dovecot
- Dovecot holds ``[Gmail]/All Mail`` (\\All) with every message that is neither in the Trash
  nor in Spam, once; each label is a folder holding a copy (INBOX for \\Inbox,
  ``[Gmail]/Sent Mail``, ``[Gmail]/Drafts``, ``[Gmail]/Important``, ``[Gmail]/Starred`` and
  user labels by name). ``[Gmail]/Trash`` and ``[Gmail]/Spam`` hold a message alone.
  Dovecot's X-GUID survives COPY, so the copies of one message share it.
- X-GM-MSGID: 63 bits of SHA-256 over the X-GUID; the same in every folder, stable.
- X-GM-THRID: the X-GM-MSGID of the oldest message (lowest All Mail UID) of its thread, as
  Dovecot's THREAD=REFERENCES (RFC 5256: references, then base subject) groups All Mail;
  as on Gmail, a thread is named after its first message. A message in Trash or Spam is
  its own thread here.
- X-GM-LABELS: the folders holding a copy, All Mail left out: \\Inbox, \\Sent, \\Draft,
  \\Important, \\Starred, \\Trash, \\Spam as atoms, user labels by their (modified UTF-7)
  folder name, quoted unless an atom, as in the document's example
  ``(\\Inbox \\Sent Important "Muy Importante")``.
- A label change gives the message's All Mail copy a new MODSEQ, as on Gmail, where
  labels are CONDSTORE data of the message (Dovecot's MODSEQ moves with a keyword the
  front sets and clears there, and never shows).
- STORE +X-GM-LABELS copies into the label's folder (creating it for a new user label),
  -X-GM-LABELS expunges the copy there, X-GM-LABELS (no sign) does both. \\Starred is the
  \\Flagged flag: adding or removing it sets or clears \\Flagged on every copy, and a flag
  STORE that changes \\Flagged puts the message in or out of ``[Gmail]/Starred``.
- STORE +FLAGS / -FLAGS apply to every copy (Gmail's flags belong to the message), except
  \\Deleted, which belongs to the folder: expunging from a label folder removes that label.
- Expunging from All Mail, the last folder that shows a message here, does what Gmail's
  ImapSettings.expungeBehavior "trash" does (the other choices are "archive" and
  "deleteForever"): the message moves to the Trash and its labels go. From Trash or Spam
  it is deleted for ever; from ``[Gmail]/Starred`` it clears \\Flagged.
- COPY or MOVE to a label folder adds the label (no second copy when it is there already);
  to the Trash or Spam it removes every other label and All Mail; out of the Trash or Spam
  it comes back to All Mail. MOVE from a label folder also removes that label; MOVE from
  All Mail does not take it out of All Mail.
- APPEND to a label folder puts the message in All Mail too.
- SEARCH X-GM-MSGID n, X-GM-THRID n, X-GM-LABELS label and X-GM-RAW "query", each as the
  whole search (after optional ESEARCH RETURN options and CHARSET). X-GM-RAW knows from:,
  to:, cc:, bcc:, subject:, label:, in:inbox, is:unread, is:read, is:starred, quoted
  phrases and plain words, all ANDed; anything else (OR, -, has:, after:, ...) is answered
  BAD. It matches substrings, as Dovecot does, where Gmail matches words; to: matches Cc
  and Bcc recipients too, as Gmail's does. The front keeps
  every X-GM-RAW query it served in ``raw_queries``.
- Mail relayed by the Dovecot's submission service (``gmail_dovecot(users, relay_port)``
  with ``GmailSmtp`` listening there) is filed in the sender's Sent Mail, as Gmail's SMTP
  does, and delivered to the emulation's users (``smtp``).

Commands that pass through (SELECT, STATUS, plain FETCH and SEARCH, ...) are Dovecot's
answers: its own items (X-GUID, PREVIEW, SAVEDATE) are not hidden when a client asks.
APPEND to ``[Gmail]/Starred`` does not set \\Flagged.

Not emulated (answered BAD or left out of CAPABILITY): IDLE, XLIST, COMPRESS, UTF8=ACCEPT,
AUTHENTICATE, STARTTLS, STORE FLAGS without a sign, X-GM criteria mixed with other search
keys, Gmail's expunge settings other than "trash" (and auto-expunge: \\Deleted mail waits
for EXPUNGE, as with it off), Gmail's own conversation rules.
It is test infrastructure: every label query reads all folders, fine for dozens of
messages, not for thousands.

Modules: ``model`` (folders, labels, ids), ``wire`` (commands and literals), ``index`` (the
second Dovecot session that finds, copies and expunges), ``front`` (the server), ``smtp``
(Gmail's SMTP side).
"""

from bridge.demo.gmail.front import GmailFront
from bridge.demo.gmail.model import ALL_MAIL, GMAIL_FOLDERS, SPAM, STARRED, TRASH, gmail_dovecot
from bridge.demo.gmail.smtp import SENT_MAIL, GmailSmtp

__all__ = [
    "ALL_MAIL", "GMAIL_FOLDERS", "SENT_MAIL", "SPAM", "STARRED", "TRASH", "GmailFront",
    "GmailSmtp", "gmail_dovecot",
]  # fmt: skip
