"""Gmail's system folders: INBOX, the container of All Mail and every folder in it."""

from __future__ import annotations

from bridge.mail.gmail_folders import system_folder_names
from bridge.store.records import MailboxRecord


def folder(name: str, role: str | None = None) -> MailboxRecord:
    return MailboxRecord(id=name, upstream_key=name, name=name, delimiter="/", role=role)


def test_the_container_is_all_mails_parent_whatever_its_name() -> None:
    # A German account: "[Google Mail]", with its folders named in German.
    records = [
        folder("INBOX", "inbox"), folder("[Google Mail]"),
        folder("[Google Mail]/Alle Nachrichten", "all"), folder("[Google Mail]/Markiert"),
        folder("[Google Mail]/Gesendet", "sent"), folder("Arbeit"), folder("Arbeit/2026"),
        folder("[Google Mail] Notizen"),
    ]  # fmt: skip
    assert system_folder_names(records) == {
        "INBOX", "[Google Mail]", "[Google Mail]/Alle Nachrichten", "[Google Mail]/Markiert",
        "[Google Mail]/Gesendet",
    }  # fmt: skip


def test_the_containers_names_count_when_all_mail_is_hidden() -> None:
    records = [folder("INBOX", "inbox"), folder("[Gmail]"), folder("[Gmail]/Sent Mail", "sent"),
               folder("Receipts")]  # fmt: skip
    assert system_folder_names(records) == {"INBOX", "[Gmail]", "[Gmail]/Sent Mail"}
