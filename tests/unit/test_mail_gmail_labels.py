"""Gmail's label views (bridge/mail/gmail_labels.py): which folder shows which label, and
which views are behind All Mail."""

from __future__ import annotations

import pytest

from bridge.mail.gmail_labels import LabelViews
from bridge.store.records import FolderState, MailboxRecord

SYNCED = FolderState(uidvalidity=7, uidnext=40, messages=30, modseq=99)


def record(name: str, role: str | None = None, **fields: object) -> MailboxRecord:
    return MailboxRecord(id=f"m-{name}", upstream_key=name, name=name, delimiter="/",
                         role=role, **fields)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def views() -> LabelViews:
    return LabelViews.of(
        record("[Gmail]/All Mail", "all", synced=SYNCED),
        [
            record("INBOX", "inbox", synced=SYNCED),
            record("[Gmail]/Drafts", "drafts", synced=SYNCED, special_use="\\Drafts"),
            # No role (issue 12): its SPECIAL-USE names its label.
            record("[Gmail]/Starred", synced=SYNCED, special_use="\\Flagged"),
            record("[Gmail]/Trash", "trash"),
            record("[Gmail]/Spam", "junk"),
            record("Entwürfe", synced=SYNCED),
            record("2024", synced=None, status=FolderState(1, 5, 4)),
            record("Empty", synced=None, status=FolderState(1, 1, 0)),
            record("[Gmail]", selectable=False),
        ],
    )


def test_bins_and_all_mail_are_not_views(views: LabelViews) -> None:
    assert set(views.bins) == {"m-[Gmail]/Trash", "m-[Gmail]/Spam"}
    assert "m-[Gmail]/All Mail" not in views.views and "m-[Gmail]" not in views.views
    assert views.label_of(views.views["m-INBOX"]) == "\\Inbox"
    assert views.label_of(views.views["m-[Gmail]/Drafts"]) == "\\Draft"
    assert views.label_of(views.views["m-Entwürfe"]) == "Entwürfe"


@pytest.mark.parametrize(
    ("labels", "shown"),
    [
        ((b"\\Inbox", b"\\Starred"), {"m-INBOX", "m-[Gmail]/Starred"}),
        ((b"\\inbox",), {"m-INBOX"}),  # system labels in any case
        ((b"\\Draft",), {"m-[Gmail]/Drafts"}),
        ((b"\\Drafts",), {"m-[Gmail]/Drafts"}),  # the emulation's older spelling
        ((b"Entw&APw-rfe",), {"m-Entwürfe"}),  # modified UTF-7, as folder names
        ((2024,), {"m-2024"}),  # imapclient reads a label of digits as a number
        ((b"Gone", b"Entw&APw-rfe-broken", b"\\Sent"), set()),  # no folder shows these
    ],
)
def test_labels_name_their_views(views: LabelViews, labels: tuple, shown: set[str]) -> None:
    assert views.shown_in(labels) == shown


def test_a_view_is_behind_until_synced_with_all_mail(views: LabelViews) -> None:
    # 2024 holds mail it was never filled with; Empty holds none, so nothing is missed.
    assert [record.name for record in views.behind()] == ["2024"]
    assert [record.name for record in views.first_seen_empty()] == ["Empty"]


def test_outside_keeps_where_messages_really_are(views: LabelViews) -> None:
    locations = {"m-[Gmail]/All Mail": [12], "m-INBOX": [12], "m-[Gmail]/Trash": [3]}
    assert views.outside(locations) == {"m-[Gmail]/All Mail": [12], "m-[Gmail]/Trash": [3]}
    assert views.upstream_name(views.views["m-INBOX"]) == "[Gmail]/All Mail"
    assert views.upstream_name(views.bins["m-[Gmail]/Trash"]) == "[Gmail]/Trash"


def test_a_view_never_filled_is_behind_an_all_mail_never_synced() -> None:
    # Both without a sync state: not in step, since a view may hold a first page under its
    # own folder's UIDs (from a bridge that synced label folders as folders).
    views = LabelViews.of(
        record("[Gmail]/All Mail", "all"),
        [record("INBOX", "inbox", status=FolderState(1, 9, 8))],
    )
    assert [record.name for record in views.behind()] == ["INBOX"]
