"""Mailbox roles (RFC 8621 §2): from SPECIAL-USE (RFC 6154) first, else from well-known names.

A server without SPECIAL-USE (GNU imap4d, older Courier and Cyrus setups) still has the
folders every client creates by name: "Sent", "Trash", "Gesendet", "Papierkorb", ... A
folder gets a role from its name when the name, compared case-insensitively after NFC,
is in ``NAMES`` and the folder sits at the top level or directly under INBOX
("INBOX.Sent", as Courier and Cyrus lay folders out). Deeper folders ("Work/Sent") are a
user's own and get none.

Each mailbox has at most one role and each role is on at most one mailbox. SPECIAL-USE
wins: a role some folder holds by attribute is never given to another by name. Among
folders that could have a role by name, the one whose name comes first in its role's
list wins ("Sent" before "Sent Items"), then a top-level folder before one under INBOX.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from bridge.imap.models import MailboxListing

ROLE_FOR_INBOX = "inbox"
# SPECIAL-USE attributes that give no role (issue 12). Both are in IANA's registry that
# RFC 8621 §2 draws roles from, but neither names a place mail is filed in: a \Flagged
# folder (Gmail's Starred, a Dovecot virtual folder) lists the messages with the $flagged
# keyword, which clients already show, and Gmail's \Important the ones its importance
# guess picked. Clients offer a folder with a role as a destination ("move to ..."), and
# moving into these means something else (flag, mark important) or nothing.
NO_ROLE_ATTRIBUTES = frozenset({"\\flagged", "\\important"})

# Role -> the names clients give that folder: English first, then the names localized
# clients (Thunderbird, Outlook, Apple Mail, webmails) create, by language.
NAMES: dict[str, tuple[str, ...]] = {
    "drafts": (
        "Drafts", "Draft",
        "Entwürfe",  # German
        "Brouillons",  # French
        "Borradores",  # Spanish
        "Bozze",  # Italian
        "Concepten",  # Dutch
        "Rascunhos",  # Portuguese
        "Utkast",  # Swedish, Norwegian
        "Kladder",  # Danish
        "Szkice", "Kopie robocze",  # Polish
    ),
    "sent": (
        "Sent", "Sent Items", "Sent Messages", "Sent Mail",
        "Gesendet", "Gesendete Elemente", "Gesendete Objekte",
        "Envoyés", "Éléments envoyés", "Messages envoyés",
        "Enviados", "Elementos enviados",
        "Posta inviata", "Inviati",
        "Verzonden", "Verzonden items",
        "Itens enviados",
        "Skickat", "Skickade objekt",
        "Sendt", "Sendte elementer",
        "Wysłane",
    ),
    "trash": (
        "Trash", "Deleted Items", "Deleted Messages", "Bin",
        "Papierkorb", "Gelöscht", "Gelöschte Elemente", "Gelöschte Objekte",
        "Corbeille", "Éléments supprimés",
        "Papelera", "Elementos eliminados",
        "Cestino", "Posta eliminata",
        "Prullenbak", "Verwijderde items",
        "Lixeira", "Lixo", "Itens excluídos",
        "Papperskorgen", "Borttagna objekt",
        "Papirkurv", "Slettede elementer",
        "Kosz",
    ),
    "junk": (
        "Junk", "Junk E-mail", "Junk Email", "Junk Mail", "Spam", "Bulk Mail",
        "Junk-E-Mail", "Unerwünscht",
        "Indésirables", "Courrier indésirable",
        "Correo no deseado",
        "Posta indesiderata",
        "Ongewenste e-mail",
        "Lixo eletrônico",
        "Skräppost",
        "Uønsket e-post",
    ),
    "archive": (
        "Archive", "Archives",
        "Archiv",  # German, Czech
        "Archivio",  # Italian
        "Archivo",  # Spanish
        "Archief",  # Dutch
        "Arquivo",  # Portuguese
        "Arkiv",  # Swedish, Danish, Norwegian
        "Archiwum",  # Polish
    ),
}  # fmt: skip


def _folded(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


# Folded name -> (role, rank within the role's list).
_BY_NAME: dict[str, tuple[str, int]] = {
    _folded(name): (role, rank) for role, names in NAMES.items() for rank, name in enumerate(names)
}


def special_use_role(listing: MailboxListing) -> str | None:
    """The role INBOX has, or the one its SPECIAL-USE attribute gives."""
    if listing.name.upper() == "INBOX":
        return ROLE_FOR_INBOX
    if listing.special_use and listing.special_use.lower() not in NO_ROLE_ATTRIBUTES:
        return listing.special_use.lstrip("\\").lower()
    return None


def name_role(name: str, delimiter: str | None) -> tuple[str, int, int] | None:
    """(role, rank of the name, depth: 0 top level, 1 under INBOX) if ``name`` is a known
    one, at a place where clients create it; else None."""
    depth = 0
    if delimiter and delimiter in name:
        parent, _, leaf = name.partition(delimiter)
        if parent.upper() != "INBOX" or delimiter in leaf:
            return None
        name, depth = leaf, 1
    found = _BY_NAME.get(_folded(name))
    return (found[0], found[1], depth) if found else None


def assign_roles(listings: Iterable[MailboxListing]) -> dict[str, str]:
    """Folder name -> role; each role on one mailbox only (RFC 8621 §2)."""
    ordered = sorted(listings, key=lambda item: (item.name.upper() != "INBOX", item.name))
    roles: dict[str, str] = {}
    taken: set[str] = set()
    for listing in ordered:
        role = special_use_role(listing)
        if role and role not in taken:
            taken.add(role)
            roles[listing.name] = role
    # (rank of the name, depth, name, role): the best-placed claim on each role wins.
    candidates = sorted(
        (found[1], found[2], listing.name, found[0])
        for listing in ordered
        if listing.name not in roles
        and listing.selectable
        and (found := name_role(listing.name, listing.delimiter)) is not None
    )
    for _rank, _depth, name, role in candidates:
        if role not in taken:
            taken.add(role)
            roles[name] = role
    return roles
