"""Whether the upstream tells logins apart by case, so that one mailbox is one account.

Dovecot's default ``auth_username_format = %Lu`` lower-cases every login: ``Carol``,
``CAROL`` and ``carol`` reach the same mailbox. bridge keys everything by the login
(account id, cache directory, pooled connections, watcher, throttles), so on such a
server it must key by the lower-cased login too, or one mailbox becomes three accounts.

Modes (setting ``login_case``):

- ``insensitive``: every login is lower-cased before use.
- ``sensitive``: logins are used as typed.
- ``auto`` (default): the first login with an upper-case letter is checked as typed;
  once the server accepts it, it is tried lower-cased with the same password. Accepted:
  the server folds case (every later login is lower-cased); refused: it does not (logins
  stay as typed). The probe follows a successful login only, so it never adds a failure
  to a guesser's count, and it runs once per process (one extra LOGIN). A server where
  ``Carol`` and ``carol`` are two accounts with one password cannot be told apart this
  way: set ``sensitive`` there.

Only ASCII letters fold, as Dovecot's ``%L`` does: ``Ä`` and ``ä`` stay two logins.
"""

from __future__ import annotations

import logging
import string
import threading

from bridge.config import LoginCaseMode
from bridge.imap.errors import AuthFailed
from bridge.imap.pool import ConnectionPool

log = logging.getLogger("bridge.imap")

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(username: str) -> str:
    return username.translate(_ASCII_LOWER)


class LoginCase:
    def __init__(self, mode: LoginCaseMode = "auto") -> None:
        # None while "auto" has not learnt the server's rule yet.
        self.insensitive: bool | None = None if mode == "auto" else mode == "insensitive"
        self._lock = threading.Lock()

    def normalize(self, username: str) -> str:
        """The login bridge keys by: lower-cased once the server is known to fold case."""
        return fold(username) if self.insensitive else username

    def verify(self, pool: ConnectionPool, username: str, password: str) -> str:
        """Check the password upstream (blocking: call from a worker thread) and return the
        login to key by, learning the server's rule on the way if it is still unknown.
        AuthFailed if the password is wrong, UpstreamError if the server cannot answer."""
        if self.insensitive is not None or fold(username) == username:
            pool.verify(self.normalize(username), password)
            return self.normalize(username)
        with self._lock:
            if self.insensitive is None:
                self._learn(pool, username, password)
        pool.verify(self.normalize(username), password)
        return self.normalize(username)

    def _learn(self, pool: ConnectionPool, username: str, password: str) -> None:
        # The login as typed first, outside the pool: a wrong password ends here, as any
        # failed login does, and no pooled connection is left under a key about to go.
        pool.open_dedicated(username, password).close()
        try:
            pool.verify(fold(username), password)
        except AuthFailed:
            self.insensitive = False
        else:
            self.insensitive = True
        log.info("upstream logins are case-%s", "insensitive" if self.insensitive else "sensitive")
