"""One settings struct, filled from defaults, a TOML file, BRIDGE_* variables and flags.

Later sources win: flags over the environment over the file over the defaults.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

TlsMode = Literal["implicit", "starttls", "plain"]


class ConfigError(Exception):
    pass


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    upstream_host: str = "127.0.0.1"
    upstream_port: int | None = None
    upstream_tls: TlsMode = "implicit"
    upstream_verify_tls: bool = True
    upstream_timeout: float = 30.0
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

    @property
    def imap_port(self) -> int:
        if self.upstream_port is not None:
            return self.upstream_port
        return 993 if self.upstream_tls == "implicit" else 143

    def validate(self) -> Settings:
        insecure = self.upstream_tls == "plain" and not self.allow_plaintext
        if insecure and not _is_loopback(self.upstream_host):
            raise ConfigError(
                f"plain IMAP to {self.upstream_host} would send passwords in the clear; "
                "use --upstream-tls implicit|starttls, or --allow-plaintext to force it"
            )
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise ConfigError(f"unknown log level {self.log_level!r}")
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
