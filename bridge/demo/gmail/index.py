"""The front's second Dovecot session per client: where each message is (its X-GUID in
every folder), its thread in All Mail, and the copies and expunges that keep the labels."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.demo.gmail.model import ALL_MAIL, LABELS_CHANGED, gm_id


class Index:
    """A second Dovecot session of the same user: reads every folder, copies, expunges."""

    def __init__(self, dovecot: Dovecot, user: str, password: str) -> None:
        self.client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
        self.client.login(user, password)
        self._threads: dict[str, int] = {}
        self._threads_key: tuple[int, ...] = ()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.logout()

    def folders(self) -> list[str]:
        return [
            "INBOX" if name.upper() == "INBOX" else name
            for flags, _, name in self.client.list_folders()
            if not {f.lower() for f in flags} & {b"\\noselect", b"\\nonexistent"}
        ]

    def guids(self, folder: str) -> dict[str, int]:
        """X-GUID -> UID in one folder."""
        self.client.select_folder(folder, readonly=True)
        uids = self.client.search("ALL")
        if not uids:
            return {}
        found = self.client.fetch(uids, ["X-GUID"])
        return {data[b"X-GUID"].decode(): uid for uid, data in found.items()}

    def locations(self) -> dict[str, dict[str, int]]:
        """X-GUID -> {folder: UID} over every folder."""
        where: dict[str, dict[str, int]] = {}
        for folder in self.folders():
            for guid, uid in self.guids(folder).items():
                where.setdefault(guid, {})[folder] = uid
        return where

    def thread_ids(self) -> dict[str, int]:
        """X-GUID -> X-GM-THRID for All Mail, recomputed when All Mail changed."""
        # A new SELECT, not STATUS: Dovecot answers STATUS of the selected folder from the
        # session's own view, which may be stale.
        opened = self.client.select_folder(ALL_MAIL, readonly=True)
        key = tuple(int(opened.get(item, 0)) for item in (b"UIDVALIDITY", b"UIDNEXT", b"EXISTS"))
        if key != self._threads_key:
            guid_of = {uid: guid for guid, uid in self.guids(ALL_MAIL).items()}
            threads: dict[str, int] = {}
            for thread in self.client.thread("REFERENCES", "ALL") if guid_of else ():
                uids = list(_flatten(thread))
                root = gm_id(guid_of[min(uids)])
                threads.update({guid_of[uid]: root for uid in uids if uid in guid_of})
            self._threads, self._threads_key = threads, key
        return self._threads

    def settle(self, wanted: dict[str, set[str]]) -> None:
        """Copy and expunge until each message is in exactly the folders wanted."""
        where = self.locations()
        known = set(self.folders())
        copies: dict[tuple[str, str], dict[str, int]] = {}
        removals: dict[str, list[int]] = {}
        for guid, folders in wanted.items():
            here = where.get(guid, {})
            if not here:
                continue
            source = ALL_MAIL if ALL_MAIL in here else min(here)
            for target in sorted(folders - here.keys()):
                copies.setdefault((source, target), {})[guid] = here[source]
            for folder in here.keys() - folders:
                removals.setdefault(folder, []).append(here[folder])
        # Copies first: a message is never in no folder, even if a step fails.
        for (source, target), moved in copies.items():
            if target not in known:
                self.client.create_folder(target)
                known.add(target)
            self.client.select_folder(source, readonly=True)
            self.client.copy(list(moved.values()), target)
            self.undelete(target, set(moved))
        for folder, uids in removals.items():
            self.client.select_folder(folder)
            self.client.add_flags(uids, [b"\\Deleted"], silent=True)
            self.client.expunge(uids)
        relabelled = {
            guid for guid, folders in wanted.items() if folders != set(where.get(guid, {}))
        }
        self.labels_changed(relabelled)

    def labels_changed(self, guids: set[str]) -> None:
        """Give the All Mail copies of relabelled messages a new MODSEQ, as Gmail does (a
        label change is a CONDSTORE change of the message): Dovecot knows nothing of
        labels, so a keyword set and cleared again moves the mod-sequence."""
        if not guids:
            return
        uids = [uid for guid, uid in self.guids(ALL_MAIL).items() if guid in guids]
        if uids:
            self.client.select_folder(ALL_MAIL)
            self.client.add_flags(uids, [LABELS_CHANGED], silent=True)
            self.client.remove_flags(uids, [LABELS_CHANGED], silent=True)

    def undelete(self, folder: str, guids: set[str]) -> None:
        """Copies made from a message marked \\Deleted (expunged from All Mail) must not
        carry the mark into their new folder."""
        uids = [uid for guid, uid in self.guids(folder).items() if guid in guids]
        if uids:
            self.client.select_folder(folder)
            self.client.remove_flags(uids, [b"\\Deleted"], silent=True)

    def set_flags(self, guids: Iterable[str], flags: list[bytes], add: bool) -> None:
        """Add or remove ``flags`` on every copy of the messages."""
        wanted = set(guids)
        for folder in self.folders():
            uids = [uid for guid, uid in self.guids(folder).items() if guid in wanted]
            if uids:
                self.client.select_folder(folder)
                if add:
                    self.client.add_flags(uids, flags, silent=True)
                else:
                    self.client.remove_flags(uids, flags, silent=True)

    def uidvalidity(self, folder: str) -> int:
        return int(self.client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])


def _flatten(thread: Any) -> Iterable[int]:
    if isinstance(thread, int):
        yield thread
        return
    for item in thread:
        yield from _flatten(item)
