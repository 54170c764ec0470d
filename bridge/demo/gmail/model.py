"""Gmail's folder model as the front keeps it in Dovecot: which folder holds which label,
how labels read in X-GM-LABELS, and the numbers Gmail gives messages."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from imapclient import imap_utf7

from bridge.demo.dovecot import Dovecot

ALL_MAIL = "[Gmail]/All Mail"
TRASH = "[Gmail]/Trash"
SPAM = "[Gmail]/Spam"
STARRED = "[Gmail]/Starred"
BINS = {TRASH, SPAM}
# The keyword the front sets and clears on a relabelled message's All Mail copy, so that its
# MODSEQ moves as Gmail's does; left out of every answer the client gets.
LABELS_CHANGED = b"$XGmLabelsChanged"
# The folders Dovecot creates at login, with their SPECIAL-USE attribute.
GMAIL_FOLDERS = {
    ALL_MAIL: "\\All",
    "[Gmail]/Sent Mail": "\\Sent",
    "[Gmail]/Drafts": "\\Drafts",
    TRASH: "\\Trash",
    SPAM: "\\Junk",
    STARRED: "\\Flagged",
    "[Gmail]/Important": "\\Important",
}
# X-GM-LABELS names of the system labels and the folders that hold them.
SYSTEM_LABELS = {
    "\\Inbox": "INBOX",
    "\\Sent": "[Gmail]/Sent Mail",
    "\\Draft": "[Gmail]/Drafts",
    "\\Important": "[Gmail]/Important",
    "\\Starred": STARRED,
    "\\Trash": TRASH,
    "\\Spam": SPAM,
}
_LABEL_OF_FOLDER = {folder: label for label, folder in SYSTEM_LABELS.items()}
# RFC 3501 §9 ATOM-CHAR: no "(", ")", "{", space, "%", "*", '"', "\\" or "]".
_ATOM = re.compile(r"[!#$&'+\-./0-9:;<=>?@A-Z^_`a-z|}~\[]+")


def gm_id(guid: str) -> int:
    """A stable 63-bit number for a Dovecot X-GUID (Gmail's ids are unsigned 64-bit)."""
    return int.from_bytes(hashlib.sha256(guid.encode()).digest()[:8], "big") >> 1


def gmail_dovecot(users: dict[str, str], relay_port: int | None = None) -> Dovecot:
    """A Dovecot with Gmail's folders (not started); with ``relay_port``, its submission
    service relays there (to a ``GmailSmtp``)."""
    return Dovecot(users, special_folders=dict(GMAIL_FOLDERS), relay_port=relay_port)


def normalized(folders: set[str]) -> set[str]:
    """Gmail's invariant: Trash or Spam hold a message alone, else All Mail holds it."""
    for bin_folder in (TRASH, SPAM):
        if bin_folder in folders:
            return {bin_folder}
    return folders | {ALL_MAIL}


def folder_name(raw: bytes) -> str:
    name = imap_utf7.decode(raw)
    return "INBOX" if name.upper() == "INBOX" else name


def label_folder(label: bytes) -> str:
    text = label.decode("utf-8", "replace").lower()
    for name, folder in SYSTEM_LABELS.items():
        if text == name.lower() or (text == "\\drafts" and name == "\\Draft"):
            return folder
    return folder_name(label)


def label_atom(folder: str) -> bytes:
    if folder in _LABEL_OF_FOLDER:
        return _LABEL_OF_FOLDER[folder].encode()
    encoded = imap_utf7.encode(folder)
    if _ATOM.fullmatch(encoded.decode("ascii")):
        return encoded
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def labels_item(folders: Iterable[str]) -> bytes:
    labels = sorted(label_atom(f) for f in folders if f != ALL_MAIL)
    return b"X-GM-LABELS (" + b" ".join(labels) + b")"
