"""A throwaway Dovecot on 127.0.0.1 for the demo, the tests and the benchmarks.

Everything lives under one base directory: config, passwd file, mail, logs and the
master's sockets. Nothing outside it is touched, so several instances can run side by
side and ``stop()`` followed by removing the directory leaves no trace.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from bridge.demo.process import ThrowawayServer, free_port, start_daemon, wait_for_greeting

# What Dovecot 2.3 advertises after login, with the quota and imap_quota plugins loaded
# (QUOTA). Used when a caller asks for some capabilities to be hidden: imap_capability
# replaces the whole list.
DEFAULT_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
    "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY METADATA SPECIAL-USE QUOTA"
).split()

# Dovecot's local delivery agent (what an MTA runs per message), from dovecot-core.
LDA = "/usr/lib/dovecot/dovecot-lda"

SPECIAL_FOLDERS = {
    "Drafts": "\\Drafts",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}


def mail_owner() -> tuple[int, int, str]:
    """Dovecot refuses to run mail processes as root: use nobody when we are root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return entry.pw_uid, entry.pw_gid, entry.pw_name
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid, entry.pw_name


@dataclass
class Dovecot(ThrowawayServer):
    """One Dovecot master process serving IMAP for a fixed set of users."""

    base_prefix: ClassVar[str] = "dc"
    # Extensions to advertise on top (imap_capability changes only what is advertised: a
    # name Dovecot does not serve is refused when used, as a misconfigured server would).
    advertise_capabilities: Iterable[str] = ()
    # Off, Dovecot refuses NOTIFY (NO [NOTIFICATIONOVERFLOW]) and stops advertising it
    # unless told to (advertise_capabilities, or hide_capabilities, set the whole list).
    mailbox_list_index: bool = True
    mail_format: str = "maildir"
    # The hierarchy separator the namespace shows; on Maildir++ "." is refused inside a
    # name either way, "/" too when the separator is ".".
    separator: str = "/"
    # SMTP submission (dovecot-submissiond), relaying every accepted message to an SMTP
    # server on 127.0.0.1:relay_port (a sink the tests read); off when relay_port is None.
    relay_port: int | None = None
    submission_port: int = 0
    # ManageSieve (dovecot-managesieved) with Sieve at delivery (dovecot-sieve).
    sieve: bool = False
    # The largest message an APPEND may bring (quota_max_mail_size, e.g. "100k"): bigger
    # ones are refused with NO [LIMIT].
    max_mail_size: str | None = None
    # Seconds between IDLE's "* OK Still here" (imap_idle_notify_interval); None: Dovecot's
    # two minutes.
    idle_notify_interval: int | None = None
    sieve_port: int = 0
    # Further settings, appended to the configuration as they are (benchmarks try
    # Dovecot's own options with them).
    extra_config: str = ""
    # Where Sieve's own messages (vacation replies, redirects) go at delivery: an SMTP
    # server on 127.0.0.1:sieve_smtp_port; None leaves Dovecot's default (sendmail).
    sieve_smtp_port: int | None = None
    # TLS: (certificate, key) PEM files. Then IMAP, submission and ManageSieve offer
    # STARTTLS on their ports, and IMAP speaks implicit TLS on tls_port too.
    tls_files: tuple[Path, Path] | None = None
    tls_port: int = 0
    # OAuth 2.0 logins (SASL XOAUTH2 and OAUTHBEARER, for IMAP, submission and ManageSieve)
    # beside the passwords: Dovecot's oauth2 passdb asks this URL about each token, with
    # GET and "Authorization: Bearer <token>", and takes {"active": true, "username": ...}.
    oauth_introspection_url: str | None = None
    # Folders created at login with their SPECIAL-USE attribute (RFC 6154).
    special_folders: dict[str, str] = field(default_factory=lambda: dict(SPECIAL_FOLDERS))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.relay_port is not None:
            self.submission_port = self.submission_port or free_port()
        if self.sieve:
            self.sieve_port = self.sieve_port or free_port()
        if self.tls_files is not None:
            self.tls_port = self.tls_port or free_port()

    @property
    def config_path(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "dovecot.conf"

    def mail_dir(self, user: str) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "mail" / user

    def sieve_dir(self, user: str) -> Path:
        """The user's Sieve scripts (outside the Maildir, where Maildir++ would see a
        dot-named entry as a folder)."""
        assert self.base_dir is not None
        return self.base_dir / "sieve" / user

    def deliver(self, user: str, message: bytes, sender: str, recipient: str) -> None:
        """Deliver ``message`` to ``user`` as the MTA would, through Dovecot's LDA: the
        user's active Sieve script runs (with ``sieve=True``). RuntimeError if refused."""
        done = subprocess.run(
            [LDA, "-c", str(self.config_path), "-d", user, "-a", recipient, "-f", sender],
            input=message,
            capture_output=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"dovecot-lda failed ({done.returncode}): {done.stderr!r}")

    def start(self, timeout: float = 15.0) -> Dovecot:
        assert self.base_dir is not None
        uid, gid, _ = mail_owner()
        for sub in ("run", "state", "mail", "sieve"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.base_dir, 0o755)
        for sub in ("mail", "sieve"):
            os.chown(self.base_dir / sub, uid, gid)
        for user in self.users:
            for folder in (self.mail_dir(user), self.sieve_dir(user)):
                folder.mkdir(exist_ok=True)
                os.chown(folder, uid, gid)
        self._write_passwd()
        self.config_path.write_text(self._config(uid, gid))
        self.process = start_daemon(
            ["dovecot", "-F", "-c", str(self.config_path)], self.base_dir / "master.out"
        )
        wait_for_greeting(self.process, self.host, self.port, timeout, self.read_log)
        return self

    def _write_passwd(self) -> None:
        assert self.base_dir is not None
        passwd = self.base_dir / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        passwd.chmod(0o600)
        # The auth process reads the passwd file as the internal user.
        internal = pwd.getpwnam(self._internal_user)
        if os.geteuid() == 0:
            os.chown(passwd, internal.pw_uid, internal.pw_gid)

    def read_log(self) -> str:
        assert self.base_dir is not None
        parts = []
        for name in ("master.out", "dovecot.log"):
            path = self.base_dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    @property
    def _internal_user(self) -> str:
        return "dovecot" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def _login_user(self) -> str:
        return "dovenull" if os.geteuid() == 0 else self._internal_user

    def _config(self, uid: int, gid: int) -> str:
        base = self.base_dir
        hidden = {c.upper() for c in self.hide_capabilities}
        added = [c for c in self.advertise_capabilities if c.upper() not in DEFAULT_CAPABILITIES]
        capability_line = ""
        if hidden or added:
            kept = [c for c in DEFAULT_CAPABILITIES if c.upper() not in hidden]
            capability_line = f"imap_capability = {' '.join(kept + added)}"
        if not self.mailbox_list_index:
            capability_line += "\nmailbox_list_index = no"
        mailboxes = "\n".join(
            f'  mailbox "{name}" {{\n    special_use = {use}\n    auto = subscribe\n  }}'
            for name, use in self.special_folders.items()
        )
        # Maildir++ rather than LAYOUT=fs: with the latter, Dovecot 2.3's mailbox list index
        # keeps a session from seeing folders other sessions create.
        mail_location = f"{self.mail_format}:{base}/mail/%u"
        return f"""\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = {" ".join(self._protocols)}
listen = 127.0.0.1
{self._ssl_config()}
disable_plaintext_auth = no
auth_mechanisms = plain login{" xoauth2 oauthbearer" if self.oauth_introspection_url else ""}
# Failed logins answer at once, and earn no penalty for the address: the tests exercise
# bridge's own throttling, and all of them come from 127.0.0.1.
auth_failure_delay = 0
first_valid_uid = {min(uid, 500)}
first_valid_gid = {min(gid, 500)}
default_login_user = {self._login_user}
default_internal_user = {self._internal_user}
mail_location = {mail_location}
mail_uid = {uid}
mail_gid = {gid}
mail_max_userip_connections = 200
{capability_line}
# Per-user quota, counted from the mail indexes (the "count" backend needs quota_vsizes):
# GETQUOTAROOT answers with a "User quota" root holding a STORAGE and a MESSAGE limit.
mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
{f"  imap_idle_notify_interval = {self.idle_notify_interval}s" if self.idle_notify_interval else ""}
}}
plugin {{
  quota = count:User quota
  quota_rule = *:storage=10G
  quota_rule2 = *:messages=1000000
  quota_vsizes = yes
{f"  quota_max_mail_size = {self.max_mail_size}" if self.max_mail_size else ""}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
  process_min_avail = 1
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
}}
{self._oauth_config()}
passdb {{
  driver = passwd-file
  args = {base}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = {self.separator}
{mailboxes}
}}
{self._submission_config()}
{self._sieve_config()}
{self.extra_config}
"""

    def _ssl_config(self) -> str:
        if self.tls_files is None:
            return "ssl = no"
        cert, key = self.tls_files
        return f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"

    def _oauth_config(self) -> str:
        """The oauth2 passdb, for the OAuth mechanisms only: passwords still go to the
        passwd-file passdb after it."""
        if self.oauth_introspection_url is None:
            return ""
        assert self.base_dir is not None
        args = self.base_dir / "oauth2.conf"
        args.write_text(
            "introspection_mode = auth\n"
            f"introspection_url = {self.oauth_introspection_url}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        return f"""\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {args}
}}
"""

    @property
    def _protocols(self) -> list[str]:
        protocols = ["imap"]
        if self.relay_port is not None:
            protocols.append("submission")
        if self.sieve:
            protocols.append("sieve")
        return protocols

    def _submission_config(self) -> str:
        if self.relay_port is None:
            return ""
        return f"""\
hostname = bridge.test
submission_relay_host = 127.0.0.1
submission_relay_port = {self.relay_port}
submission_relay_trusted = yes
service submission-login {{
  chroot =
  inet_listener submission {{
    address = 127.0.0.1
    port = {self.submission_port}
  }}
}}
"""

    def _sieve_config(self) -> str:
        if not self.sieve:
            return ""
        base = self.base_dir
        smtp = ""
        if self.sieve_smtp_port is not None:
            smtp = f"submission_host = 127.0.0.1:{self.sieve_smtp_port}"
        return f"""\
{smtp}
protocol lda {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:{base}/sieve/%u/scripts;active={base}/sieve/%u/active.sieve
}}
service managesieve-login {{
  chroot =
  inet_listener sieve {{
    address = 127.0.0.1
    port = {self.sieve_port}
  }}
}}
"""
