"""A throwaway Cyrus IMAP on 127.0.0.1 for the tests: a second real upstream beside Dovecot.

Debian's Cyrus 3.6 conflicts with Dovecot in apt, so ``.ci/install-cyrus`` unpacks its
packages into a private folder (``CYRUS_ROOT``) and the binaries run from there, their own
libraries found through LD_LIBRARY_PATH. Everything an instance writes lives under one base
directory (config, SASL passwords, mail spool, sockets), so several run side by side and
``stop()`` leaves no trace.

Facts this harness works with: the master does not pass its ``-C imapd.conf`` to the
services it starts, so every service line repeats it; Cyrus logs only through syslog;
mailboxes appear at the first login (``autocreate_*``), INBOX and the special folders with
their special-use attributes.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bridge.demo.dovecot import SPECIAL_FOLDERS
from bridge.demo.process import ThrowawayServer, wait_for_greeting

CYRUS_ROOT = Path(os.environ.get("BRIDGE_CYRUS_ROOT", "/opt/bridge-cyrus"))
# The SASL realm the passwords are stored under: Cyrus looks users up in its servername's.
SERVERNAME = "cyrus.test"


def installed(root: Path = CYRUS_ROOT) -> bool:
    return all(
        (root / path).is_file()
        for path in ("usr/lib/cyrus/bin/master", "usr/lib/cyrus/bin/imapd", "usr/sbin/saslpasswd2")
    )


def _service_owner() -> tuple[int, int, str]:
    """The master drops root for the services' user: nobody, or the caller when not root."""
    entry = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    return entry.pw_uid, entry.pw_gid, entry.pw_name


@dataclass
class Cyrus(ThrowawayServer):
    """One Cyrus master serving IMAP for a fixed set of users (SASL PLAIN/LOGIN, no TLS);
    ``hide_capabilities`` go to suppress_capabilities."""

    base_prefix: ClassVar[str] = "cy"
    root: Path = CYRUS_ROOT

    @property
    def config_path(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "imapd.conf"

    @property
    def _env(self) -> dict[str, str]:
        libdirs = [str(p.parent) for p in sorted(self.root.glob("usr/lib/*/libcyrus.so.0"))]
        inherited = os.environ.get("LD_LIBRARY_PATH")
        return {**os.environ, "LD_LIBRARY_PATH": ":".join([*libdirs, *filter(None, [inherited])])}

    def _bin(self, name: str) -> str:
        return str(self.root / "usr/lib/cyrus/bin" / name)

    def start(self, timeout: float = 15.0) -> Cyrus:
        assert self.base_dir is not None
        if not installed(self.root):
            raise RuntimeError(f"Cyrus is not unpacked in {self.root} (run .ci/install-cyrus)")
        for sub in ("conf", "spool", "run"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._imapd_conf())
        (self.base_dir / "cyrus.conf").write_text(self._cyrus_conf())
        self.add_users(self.users)
        uid, gid, _ = _service_owner()
        os.chmod(self.base_dir, 0o755)
        for path in [self.base_dir, *self.base_dir.rglob("*")]:
            os.chown(path, uid, gid)
        log = open(self.base_dir / "master.out", "wb")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [self._bin("master"), "-C", str(self.config_path),
             "-M", str(self.base_dir / "cyrus.conf"), "-p", str(self.base_dir / "run/master.pid")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self._env,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_for_greeting(self.process, self.host, self.port, timeout, self.read_log)
        return self

    def add_users(self, users: dict[str, str]) -> None:
        """Store SASL passwords (their mailboxes appear at the first login)."""
        assert self.base_dir is not None
        sasldb = self.base_dir / "sasldb2"
        for user, password in users.items():
            subprocess.run(
                [str(self.root / "usr/sbin/saslpasswd2"), "-p", "-c", "-f", str(sasldb),
                 "-u", SERVERNAME, user],
                input=password.encode(), env=self._env, check=True, capture_output=True,
            )  # fmt: skip
        if os.geteuid() == 0 and sasldb.exists():
            uid, gid, _ = _service_owner()
            os.chown(sasldb, uid, gid)
        self.users = {**self.users, **users}

    def read_log(self) -> str:
        """What the master wrote itself; the services log only through syslog."""
        assert self.base_dir is not None
        path = self.base_dir / "master.out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _imapd_conf(self) -> str:
        base = self.base_dir
        _, _, owner = _service_owner()
        folders = " | ".join(SPECIAL_FOLDERS)
        uses = "\n".join(
            f"xlist-{use.strip(chr(92)).lower()}: {name}" for name, use in SPECIAL_FOLDERS.items()
        )
        hidden = " ".join(self.hide_capabilities)
        return f"""\
configdirectory: {base}/conf
partition-default: {base}/spool
# Without a default partition, each imapd picks one for its first new mailbox and seeds
# rand() with the time in seconds there; the mailbox ids (and spool directories) come from
# rand(), so two processes starting in the same second gave mailboxes one directory (users
# then read each other's messages: 13-18 of 800 concurrent APPENDs; with this line, none).
defaultpartition: default
servername: {SERVERNAME}
cyrus_user: {owner}
syslog_prefix: bridge-test
lmtpsocket: {base}/run/lmtp
idlesocket: {base}/run/idle
notifysocket: {base}/run/notify
# Plain passwords on loopback, checked against a private sasldb.
allowplaintext: yes
sasl_mech_list: PLAIN LOGIN
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {base}/sasldb2
# Folders beside INBOX ("Work", not "INBOX/Work"), "/" between levels, as on Dovecot.
altnamespace: yes
unixhierarchysep: yes
# THREADID needs the conversations database.
conversations: yes
conversations_db: twoskip
# INBOX and the special folders at the first login, with a quota root like the test
# Dovecot's: 10 GiB (in KiB) and a million messages.
autocreate_quota: 10485760
autocreate_quota_messages: 1000000
autocreate_inbox_folders: {folders}
autocreate_subscribe_folders: {folders}
{uses}
{f"suppress_capabilities: {hidden}" if hidden else ""}
"""

    def _cyrus_conf(self) -> str:
        conf = f"-C {self.config_path}"
        return f"""\
START {{
  recover cmd="{self._bin("ctl_cyrusdb")} {conf} -r"
}}
SERVICES {{
  imap cmd="{self._bin("imapd")} {conf}" listen="127.0.0.1:{self.port}" prefork=1
}}
EVENTS {{
}}
DAEMON {{
}}
"""
