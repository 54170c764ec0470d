"""Email/set's mailboxIds on Gmail's label views (bridge.mail.gmail_labels), as Gmail's IMAP
documents them: a label is put on or taken off the All Mail message by ``UID STORE
+X-GM-LABELS`` / ``-X-GM-LABELS`` (taking ``\\Inbox`` off archives), never by COPY into or
expunge from the label's folder; into the Trash or Spam is a MOVE of the All Mail message
(Gmail then drops its labels, so the Trash or Spam among other mailboxes wins); out of
them a MOVE to All Mail, and the labels asked for after it. All Mail cannot be left
otherwise: Gmail keeps there every message that is not in the Trash or Spam, so a
mailboxIds without it keeps it. Where the mailboxIds Gmail made differ from those asked
for, the update's answer says what they became.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.imap.responses import format_sequence_set as uid_set
from bridge.mail.account import Account
from bridge.mail.gmail_labels import LabelViews
from bridge.mail.setting import CopyMissed, Refused

Locations = dict[str, list[int]]


def _bin(views: LabelViews, targets: set[str]) -> str | None:
    """The Trash or Spam among ``targets``, if any: it wins over the other mailboxes, as on
    Gmail, where a message put in the Trash or Spam loses every label (the Trash first)."""
    bins = sorted(targets & views.bins.keys(), key=lambda m: views.bins[m].role != "trash")
    return bins[0] if bins else None


def creation_plan(views: LabelViews, targets: list[str]) -> tuple[list[str], list[str]]:
    """Where a new message is APPENDed on Gmail and the labels then put on it: the Trash or
    Spam alone is a folder of its own; anything else goes to All Mail, its views as labels
    (the Email then shows in All Mail too, as every message outside the bins does)."""
    into_bin = _bin(views, set(targets))
    if into_bin is not None and len(targets) > 1:
        # Nothing to take the other mailboxes from yet: asked for both, the answer would
        # be a message in a mailbox other than those asked for.
        raise Refused("invalidProperties", "on Gmail a message in the Trash or Spam is in no "
                      "other mailbox", ["mailboxIds"])  # fmt: skip
    if into_bin is not None:
        return targets, []
    labels = [views.label_of(views.views[t]) for t in targets if views.is_view(t)]
    return [views.all_mail.id], labels


class GmailFiling:
    """Puts one Email in the mailboxes asked for, on Gmail."""

    def __init__(self, account: Account, views: LabelViews, writing: Callable[[], None]) -> None:
        self.account = account
        self.views = views
        # Called before each upstream write is sent (EmailSetter.changed_upstream).
        self.writing = writing

    def file(self, locations: Locations, targets: set[str]) -> dict[str, Any] | None:
        """Put the Email in ``targets`` as far as Gmail can; what its mailboxIds became
        where that differs from ``targets`` (RFC 8620 §5.3: a property the server set
        otherwise than asked), else None."""
        views = self.views
        into_bin = _bin(views, targets)
        made = {into_bin} if into_bin is not None else targets | {views.all_mail.id}
        self._file(locations, targets, into_bin)
        return None if made == targets else {"mailboxIds": dict.fromkeys(sorted(made), True)}

    def _file(self, locations: Locations, targets: set[str], into_bin: str | None) -> None:
        views = self.views
        all_mail = views.all_mail
        in_bins = [m for m in locations if m in views.bins]
        if into_bin is not None:
            if into_bin in locations:
                return
            source = all_mail.id if all_mail.id in locations else next(iter(in_bins), None)
            if source is None:
                raise Refused("notFound", "the Email is in no folder upstream")
            self._move(source, locations[source], views.bins[into_bin].name)
            return
        wanted = {t for t in targets if views.is_view(t)}
        if all_mail.id in locations:
            uids = locations[all_mail.id]
        elif in_bins:
            # Out of the Trash or Spam: back to All Mail, labelled there.
            uids = self._move(in_bins[0], locations[in_bins[0]], all_mail.name)
            if not uids and wanted:
                raise Refused("serverFail", "moved to All Mail, but Gmail did not say where")
        else:
            raise Refused("notFound", "the Email is in no folder upstream")
        shown = {m for m in locations if views.is_view(m)}
        adding = sorted(views.label_of(views.views[m]) for m in wanted - shown)
        removing = sorted(views.label_of(views.views[m]) for m in shown - wanted)
        if not uids or not (adding or removing):
            return
        folder = self.account.folder(all_mail.name, writable=True)
        self.writing()
        if folder.change_labels(uid_set(uids), adding, removing) != set(uids):
            raise CopyMissed

    def _move(self, source: str, uids: list[int], destination: str) -> list[int]:
        """MOVE the messages out of ``source`` (All Mail or a bin); their new UIDs."""
        record = self.views.bins.get(source) or self.views.all_mail
        folder = self.account.folder(record.name, writable=True)
        self.writing()
        return folder.move(uid_set(uids), destination)
