"""A throwaway GNU imap4d (GNU Mailutils) on 127.0.0.1: a minimal IMAP server for tests.

imap4d advertises IMAP4rev1 NAMESPACE ID IDLE LITERAL+ UNSELECT and nothing more: no
SPECIAL-USE, CONDSTORE, UIDPLUS, MOVE, LIST-STATUS or object ids, which makes it the test
bed for bridge's fallbacks. Its users live in a "virtual domain" passwd file under the base
directory (Mailutils' ``virtdomain`` module), so nothing of the system's own accounts is
read or touched: logins are ``user@DOMAIN``, passwords crypt(3) hashes checked by the
``generic`` module. Mail is Maildir, one folder a directory under the user's home, owned by
``nobody`` when we run as root (imap4d switches to the passwd entry's uid per session).

Everything lives under one base directory: config, passwd file, mail and the daemon's log;
``stop()`` followed by removing the directory leaves no trace.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bridge.demo.dovecot import mail_owner
from bridge.demo.process import ThrowawayServer, start_daemon, wait_for_greeting

DOMAIN = "imap4d.test"
# What Dovecot's test server makes with SPECIAL-USE; imap4d has only the names.
WELL_KNOWN_FOLDERS = ("Drafts", "Sent", "Trash", "Junk", "Archive")


def password_hash(password: str) -> str:
    """A SHA-512 crypt(3) hash, as the passwd file wants (Python's crypt module is gone
    in 3.13; openssl makes the same hash)."""
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password.encode(),
        capture_output=True,
        check=True,
        timeout=30,
    )
    return done.stdout.decode().strip()


def make_maildir(path: Path, uid: int, gid: int) -> None:
    for sub in ("", "new", "cur", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
        os.chown(path / sub, uid, gid)


@dataclass
class Imap4d(ThrowawayServer):
    """One imap4d daemon serving IMAP for a fixed set of users (names without the domain)."""

    base_prefix: ClassVar[str] = "i4d"
    folders: Iterable[str] = WELL_KNOWN_FOLDERS
    # Refuse LOGIN (advertising LOGINDISABLED): clients must AUTHENTICATE.
    login_disabled: bool = False

    def login(self, user: str) -> str:
        """The name ``user`` logs in with."""
        return f"{user}@{DOMAIN}"

    def home(self, user: str) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "mail" / user

    @property
    def config_path(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "imap4d.conf"

    def start(self, timeout: float = 15.0) -> Imap4d:
        assert self.base_dir is not None
        uid, gid, _ = mail_owner()
        os.chmod(self.base_dir, 0o755)
        (self.base_dir / "domains").mkdir(exist_ok=True)
        (self.base_dir / "mail").mkdir(exist_ok=True)
        os.chown(self.base_dir / "mail", uid, gid)
        lines = []
        for user, password in self.users.items():
            home = self.home(user)
            make_maildir(home / "INBOX", uid, gid)
            os.chown(home, uid, gid)
            for folder in self.folders:
                make_maildir(home / folder, uid, gid)
            lines.append(f"{user}:{password_hash(password)}:{uid}:{gid}::{home}:/bin/false\n")
        passwd = self.base_dir / "domains" / DOMAIN
        passwd.write_text("".join(lines))
        passwd.chmod(0o600)
        self.config_path.write_text(self._config())
        self.process = start_daemon(
            ["imap4d", f"--config-file={self.config_path}", "--daemon", "--foreground"],
            self.base_dir / "imap4d.log",
        )
        wait_for_greeting(self.process, self.host, self.port, timeout, self.read_log)
        return self

    def _config(self) -> str:
        base = self.base_dir
        return f"""\
auth {{
  authorization virtdomain;
  authentication generic;
}};
virtdomain {{
  passwd-dir {base}/domains;
}};
logging {{
  syslog false;
}};
mailbox {{
  mailbox-type maildir;
}};
namespace personal {{
  prefix "" {{
    directory "$home";
    delimiter "/";
  }};
}};
login-disabled {"yes" if self.login_disabled else "no"};
pidfile {base}/imap4d.pid;
tcp-wrappers {{
  enable no;
}};
server 127.0.0.1:{self.port} {{
  single-process no;
}};
"""

    def read_log(self) -> str:
        assert self.base_dir is not None
        path = self.base_dir / "imap4d.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
