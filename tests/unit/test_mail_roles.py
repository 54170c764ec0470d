"""Roles from SPECIAL-USE, else from well-known names (RFC 8621 §2: each role once)."""

from __future__ import annotations

import pytest

from bridge.imap.models import MailboxListing
from bridge.mail.roles import NAMES, assign_roles


def listing(
    name: str, special_use: str | None = None, delimiter: str | None = "/", selectable: bool = True
) -> MailboxListing:
    return MailboxListing(name, delimiter, frozenset(), special_use, True, selectable, None)


def roles_of(*listings: MailboxListing) -> dict[str, str]:
    return assign_roles(listings)


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("Drafts", "drafts"), ("Sent", "sent"), ("Sent Items", "sent"),
        ("Sent Messages", "sent"), ("Trash", "trash"), ("Deleted Items", "trash"),
        ("Deleted Messages", "trash"), ("Junk", "junk"), ("Junk E-mail", "junk"),
        ("Spam", "junk"), ("Archive", "archive"), ("Archives", "archive"),
        ("Entwürfe", "drafts"), ("Gesendet", "sent"), ("Papierkorb", "trash"),
        ("Gelöscht", "trash"), ("Archiv", "archive"), ("Brouillons", "drafts"),
        ("Envoyés", "sent"), ("Corbeille", "trash"), ("Indésirables", "junk"),
        ("Borradores", "drafts"), ("Enviados", "sent"), ("Papelera", "trash"),
        ("Bozze", "drafts"), ("Posta inviata", "sent"), ("Cestino", "trash"),
        ("Concepten", "drafts"), ("Verzonden", "sent"), ("Prullenbak", "trash"),
    ],
)  # fmt: skip
def test_well_known_names_have_roles(name: str, role: str) -> None:
    assert roles_of(listing("INBOX"), listing(name)) == {"INBOX": "inbox", name: role}


def test_names_match_case_insensitively_and_in_either_unicode_form() -> None:
    assert roles_of(listing("SENT"), listing("trash")) == {"SENT": "sent", "trash": "trash"}
    decomposed = "Entwu\u0308rfe"  # ü as u + combining diaeresis
    assert roles_of(listing(decomposed), listing("ENVOYÉS")) == {
        decomposed: "drafts", "ENVOYÉS": "sent",
    }  # fmt: skip


def test_under_inbox_counts_deeper_does_not() -> None:
    courier = [listing("INBOX.Sent", delimiter="."), listing("INBOX.Trash", delimiter=".")]
    assert roles_of(*courier) == {"INBOX.Sent": "sent", "INBOX.Trash": "trash"}
    assert roles_of(listing("Work/Sent"), listing("INBOX/Work/Trash"), listing("Sent/Old")) == {}


def test_each_role_once_the_first_listed_name_first_then_top_level() -> None:
    found = roles_of(
        listing("Sent Items"), listing("Sent"), listing("INBOX/Trash"), listing("Trash"),
        listing("Spam"), listing("Junk"),
    )  # fmt: skip
    assert found == {"Sent": "sent", "Trash": "trash", "Junk": "junk"}


def test_special_use_wins_over_names() -> None:
    found = roles_of(
        listing("Trash"), listing("Deleted", "\\Trash"), listing("Sent", "\\Archive"),
        listing("Archive"), listing("Gesendet"),
    )  # fmt: skip
    # "Sent" holds \Archive by attribute: it has that role and no other; the names
    # "Trash" and "Archive" lose to the attributes, "Gesendet" takes the free "sent".
    assert found == {"Deleted": "trash", "Sent": "archive", "Gesendet": "sent"}


def test_flagged_and_important_folders_get_no_role() -> None:
    # Gmail's Starred and Important: views of a mark, not places to file mail in.
    found = roles_of(
        listing("INBOX"), listing("[Gmail]/Starred", "\\Flagged"),
        listing("[Gmail]/Important", "\\Important"), listing("[Gmail]/All Mail", "\\All"),
    )  # fmt: skip
    assert found == {"INBOX": "inbox", "[Gmail]/All Mail": "all"}


def test_folders_that_cannot_be_opened_get_no_role() -> None:
    assert roles_of(listing("Trash", selectable=False)) == {}


def test_no_name_is_listed_for_two_roles() -> None:
    folded = [name.casefold() for names in NAMES.values() for name in names]
    assert len(folded) == len(set(folded))
