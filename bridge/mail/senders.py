"""Which addresses a login may send as: bridge's own rule, since neither IMAP nor SMTP
submission can be asked.

By default only the login's own address (``bridge.mail.identity.default_address``). The
operator may grant more in the ``allowed_identities`` file, one login a line::

    # login   addresses it may send as besides its own
    alice     alice.smith@example.org  sales@example.org
    bob       *@bob.example

``*@domain`` grants every address at that domain (and the wildcard Identity itself, RFC
8621 §6). Logins are matched as bridge keys them: lower-cased when the upstream folds
case (``login_case``). The file is read again whenever it changes. ``send_as_domain``
restores the wide rule of earlier versions: any address at the login's own domain.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from bridge.mime.envelope import domain_of, is_mailbox

log = logging.getLogger("bridge.mail")


@dataclass(frozen=True)
class Grants:
    """The extra addresses each login may send as, casefolded."""

    by_login: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Grants:
        by_login: dict[str, set[str]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            login, addresses = words[0], words[1:]
            bad = [a for a in addresses if not is_mailbox(a)]
            if bad or not addresses:
                log.warning("allowed identities line %d ignored: not addresses", number)
                continue
            by_login.setdefault(login, set()).update(a.casefold() for a in addresses)
        return cls({login: frozenset(found) for login, found in by_login.items()})

    def allows(self, login: str, address: str) -> bool:
        granted = self.by_login.get(login, frozenset())
        folded = address.casefold()
        return folded in granted or f"*@{domain_of(address)}" in granted


class GrantsFile:
    """The parsed file, read again when its modification time or size changes."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._grants = Grants()
        self._lock = threading.Lock()

    def current(self) -> Grants:
        try:
            stat = os.stat(self.path)
        except OSError:
            log.warning("allowed identities file %s cannot be read", self.path)
            return Grants()
        version = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if version != self._seen:
                try:
                    self._grants = Grants.parse(self.path.read_text())
                except (OSError, UnicodeDecodeError):
                    log.warning("allowed identities file %s cannot be read", self.path)
                    return Grants()
                self._seen = version
            return self._grants


_files: dict[str, GrantsFile] = {}
_files_lock = threading.Lock()


def grants_of(path: str | None) -> Grants:
    if path is None:
        return Grants()
    with _files_lock:
        grants_file = _files.get(path) or _files.setdefault(path, GrantsFile(path))
    return grants_file.current()


def may_send_as(
    login: str,
    default: str | None,
    address: str,
    *,
    allowed_identities: str | None = None,
    send_as_domain: bool = False,
) -> bool:
    """Whether ``login`` (whose own address is ``default``) may send as ``address``."""
    if not is_mailbox(address):
        return False
    if default is not None:
        if address.casefold() == default.casefold():
            return True
        if send_as_domain and domain_of(address) == domain_of(default):
            return True
    return grants_of(allowed_identities).allows(login, address)
