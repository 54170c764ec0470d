"""One settings struct, filled from defaults, a TOML file, BRIDGE_* variables and flags.

Later sources win: flags over the environment over the file over the defaults.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from bridge.endpoint import Endpoint, TlsMode
from bridge.mime.envelope import is_mailbox


class ConfigError(Exception):
    pass


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    upstream_host: str = "127.0.0.1"
    upstream_port: int | None = None
    upstream_tls: TlsMode = "implicit"
    upstream_verify_tls: bool = True
    # Seconds one upstream command (IMAP, SMTP, ManageSieve) may wait for the server, and
    # the connect: the connection is then dropped as broken.
    upstream_timeout: float = 15.0
    # Seconds a request may take from arrival to answer, login included; every upstream
    # wait is cut to what is left. Calls not run by then answer serverUnavailable.
    request_timeout: float = 30.0
    # Plain IMAP sends passwords in the clear: only to loopback unless forced.
    allow_plaintext: bool = False
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    # The absolute URL clients reach bridge at (behind a reverse proxy); by default the
    # URL of each request.
    public_url: str | None = None
    data_dir: str = "data"
    log_level: str = "info"
    pool_connections_per_user: int = 4
    # The session is built without asking the upstream, so whether it keeps quotas (IMAP
    # QUOTA, RFC 9208) is said here: then RFC 9425's capability and Quota/* are served.
    upstream_quota: bool = False
    # SMTP submission (RFC 6409) for EmailSubmission, with each user's own credentials;
    # off unless a port is set. The host defaults to upstream_host.
    submission_host: str | None = None
    submission_port: int | None = None
    submission_tls: TlsMode = "starttls"
    # The domain of users whose login is not an address: "<login>@<mail_domain>" is their
    # default Identity. Without it, such a login has no default Identity.
    mail_domain: str | None = None
    # ManageSieve (RFC 5804) for VacationResponse; off unless a port is set (often 4190).
    sieve_host: str | None = None
    sieve_port: int | None = None
    sieve_tls: TlsMode = "starttls"
    # PushSubscription URLs must be https to public addresses (no SSRF into bridge's own
    # network); this lets them be plain http and private or loopback, for tests and LANs.
    push_allow_private: bool = False

    @property
    def imap_port(self) -> int:
        if self.upstream_port is not None:
            return self.upstream_port
        return 993 if self.upstream_tls == "implicit" else 143

    @property
    def imap_endpoint(self) -> Endpoint:
        return self._endpoint(self.upstream_host, self.imap_port, self.upstream_tls)

    @property
    def smtp_endpoint(self) -> Endpoint | None:
        """SMTP submission, on the IMAP host unless said otherwise; None when not set up."""
        if self.submission_port is None:
            return None
        host = self.submission_host or self.upstream_host
        return self._endpoint(host, self.submission_port, self.submission_tls)

    @property
    def sieve_endpoint(self) -> Endpoint | None:
        """ManageSieve, on the IMAP host unless said otherwise; None when not set up."""
        if self.sieve_port is None:
            return None
        host = self.sieve_host or self.upstream_host
        return self._endpoint(host, self.sieve_port, self.sieve_tls)

    def _endpoint(self, host: str, port: int, tls: TlsMode) -> Endpoint:
        return Endpoint(host, port, tls, self.upstream_timeout, self.upstream_verify_tls)

    def validate(self) -> Settings:
        services = [
            ("IMAP", self.imap_endpoint, "upstream"),
            ("SMTP", self.smtp_endpoint, "submission"),
            ("ManageSieve", self.sieve_endpoint, "sieve"),
        ]
        for protocol, endpoint, flag in services:
            if endpoint is None or endpoint.tls != "plain" or self.allow_plaintext:
                continue
            if not _is_loopback(endpoint.host):
                raise ConfigError(
                    f"plain {protocol} to {endpoint.host} would send passwords in the clear; "
                    f"use --{flag}-tls implicit|starttls, or --allow-plaintext to force it"
                )
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise ConfigError(f"unknown log level {self.log_level!r}")
        if self.mail_domain is not None and not is_mailbox(f"user@{self.mail_domain}"):
            raise ConfigError(f"mail domain {self.mail_domain!r} is not a domain")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Settings.__struct_fields__:
        raw = environ.get(f"BRIDGE_{name.upper()}")
        if raw is not None:
            values[name] = raw
    return values


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get("BRIDGE_CONFIG")
    merged: dict[str, Any] = {}
    if config_file:
        try:
            merged.update(tomllib.loads(Path(config_file).read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {config_file}: {exc}") from exc
    merged.update(_from_env(environ))
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        # strict=False turns the environment's strings into ints, floats and booleans.
        settings = msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc)) from exc
    return settings.validate()
