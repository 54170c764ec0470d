"""What one request wrote upstream, by folder name, for the syncs after it to read back
where nothing else would show it: a flag stored without CONDSTORE shows in no STATUS item,
and a folder left to the background indexer is not synced at all until it is done."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Written:
    # UIDs whose flags this request stored.
    flags: dict[str, set[int]] = field(default_factory=dict)
    # UIDs this request moved or expunged out of the folder.
    left: dict[str, set[int]] = field(default_factory=dict)
    # The lowest UID that mail this request put in the folder can have.
    arrived: dict[str, int] = field(default_factory=dict)

    def stored(self, folder: str, uids: Iterable[int]) -> None:
        self.flags.setdefault(folder, set()).update(uids)

    def removed(self, folder: str, uids: Iterable[int]) -> None:
        self.left.setdefault(folder, set()).update(uids)

    def arriving(self, folder: str, lowest: int) -> None:
        self.arrived[folder] = min(lowest, self.arrived.get(folder, lowest))

    def named(self, folder: str) -> set[int]:
        """The folder's UIDs this request stored flags on or removed."""
        return self.flags.get(folder, set()) | self.left.get(folder, set())

    def touches(self, folder: str) -> bool:
        return bool(self.named(folder)) or folder in self.arrived

    def clear(self) -> None:
        self.flags.clear()
        self.left.clear()
        self.arrived.clear()
