"""One settings struct, filled from defaults, a TOML file, BRIDGE_* variables and flags.

Later sources win: flags over the environment over the file over the defaults.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from bridge.endpoint import Endpoint, TlsMode
from bridge.mime.envelope import is_mailbox
from bridge.providers import Provider, with_preset


class ConfigError(Exception):
    pass


LoginCaseMode = Literal["auto", "insensitive", "sensitive"]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # A mail provider whose hosts, ports and TLS fill the settings not given explicitly
    # (bridge.providers): gmail, fastmail, outlook, icloud or yahoo.
    provider: Provider | None = None
    upstream_host: str = "127.0.0.1"
    upstream_port: int | None = None
    upstream_tls: TlsMode = "implicit"
    upstream_verify_tls: bool = True
    # Seconds one upstream command (IMAP, SMTP, ManageSieve) may wait for the server: the
    # connection is then dropped as broken.
    upstream_timeout: float = 15.0
    # Seconds for the TCP connect, the TLS handshake and the greeting, so that a wrong port
    # or TLS mode fails fast, with the reason (and SMTP, ManageSieve).
    upstream_connect_timeout: float = 10.0
    # A PEM file of the CAs to trust for the upstream's certificate (a private CA, or a
    # self-signed certificate itself) instead of the system's; SSL_CERT_FILE works too.
    upstream_ca_file: str | None = None
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
    # Where the users' caches live: None for SQLite files under data_dir (the default), or
    # a PostgreSQL URL "postgresql://user:password@host:port/database" (bridge.store.postgres);
    # uploads stay under data_dir either way. Its password is never logged.
    store: str | None = None
    # Connections the PostgreSQL store's pool keeps at most (shared by every user): one per
    # request thread, and a few for the watchers' and the indexer's writes.
    store_connections: int = 12
    log_level: str = "info"
    pool_connections_per_user: int = 4
    # Threads that run requests' blocking work (bridge/workers.py): few, since request
    # threads compete for one GIL; more only help while requests wait on the upstream.
    request_threads: int = 8
    # Seconds a warm request that only reads the cache may run on the event loop itself
    # (bridge/inline.py) before it moves to a worker thread; 0: every request on a worker.
    inline_budget: float = 0.01
    # The session is built without asking the upstream, so whether it keeps quotas (IMAP
    # QUOTA, RFC 9208) is said here: then RFC 9425's capability and Quota/* are served.
    upstream_quota: bool = False
    # SMTP submission (RFC 6409) for EmailSubmission, with each user's own credentials;
    # off unless a port is set. The host defaults to upstream_host.
    submission_host: str | None = None
    submission_port: int | None = None
    submission_tls: TlsMode = "starttls"
    submission_ca_file: str | None = None  # default: upstream_ca_file
    # The domain of users whose login is not an address: "<login>@<mail_domain>" is their
    # default Identity. Without it, such a login has no default Identity.
    mail_domain: str | None = None
    # ManageSieve (RFC 5804) for VacationResponse; off unless a port is set (often 4190).
    sieve_host: str | None = None
    sieve_port: int | None = None
    sieve_tls: TlsMode = "starttls"
    sieve_ca_file: str | None = None  # default: upstream_ca_file
    # PushSubscription URLs must be https to public addresses (no SSRF into bridge's own
    # network); this lets them be plain http and private or loopback, for tests and LANs.
    push_allow_private: bool = False
    # -- hostile input and load (issue 11) --
    # Whether the upstream folds logins to lower case (Dovecot's default %Lu does): "auto"
    # learns it from the first mixed-case login (bridge.imap.login_case).
    login_case: LoginCaseMode = "auto"
    # A login sends as its own address only, plus what allowed_identities grants it: a file
    # of lines "login address..." (an address "*@domain" grants the whole domain).
    # send_as_domain restores the old rule: any address at the login's own domain.
    allowed_identities: str | None = None
    send_as_domain: bool = False
    # Pooled IMAP connections unused this long are logged out, whether or not their user
    # comes back.
    pool_idle_timeout: float = 300.0
    # Open EventSource streams per user (each holds a socket); more answer 429.
    max_event_streams_per_user: int = 10
    # Octets of uploaded blobs a user may keep stored at once; more answer 413.
    max_upload_storage_per_user: int = 1 << 30
    # Blobs move between the upstream, the client and the submission server in pieces of
    # this many octets (partial FETCH, APPEND and DATA from a temporary file): what one
    # request holds of a blob, whatever the blob's size.
    blob_chunk_size: int = 1 << 20
    # Downloads one user may run at once; one more is refused with 429 until one ends.
    max_concurrent_downloads: int = 8
    # The longest header field value an Email/set create may write (octets, before
    # folding): longer is invalidProperties.
    max_header_length: int = 16_384
    # Without CONDSTORE upstream, flag changes in folders other than INBOX (INBOX is
    # followed exactly while kept open) are found by full scans that run in the background
    # once a folder's last one is this many seconds old: the most such a change may lag.
    # New mail, expunges and \Seen changes that STATUS shows are read at once.
    flag_scan_interval: float = 60.0
    # -- Bearer tokens and OAuth 2.0 (issue 12) --
    # Seconds a token from POST /jmap/token is good for (as Authorization: Bearer, or
    # ?access_token= for EventSource and WebSocket). Tokens live in memory only: a restart
    # ends them all.
    token_lifetime: float = 3600.0
    # Pass-through OAuth (bridge.http.bearer): any other Bearer token is the mail provider's
    # access token, sent upstream as SASL OAUTHBEARER or XOAUTH2. Its login comes from RFC
    # 7662 introspection at this URL (client credentials by HTTP Basic when set)...
    oauth_introspection_url: str | None = None
    # "rfc7662" (POST token=...), or "userinfo": the URL is an OpenID Connect UserInfo
    # endpoint, asked with the token as Bearer (Google's works so).
    oauth_introspection_mode: Literal["rfc7662", "userinfo"] = "rfc7662"
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    # ...or from the token itself, a JWT signed by a key of this JWK Set, whose issuer and
    # audience must be these when set.
    oauth_jwks_url: str | None = None
    oauth_issuer: str | None = None
    oauth_audience: str | None = None
    # The introspection member or JWT claim holding the login; by default "username" from
    # RFC 7662 introspection, "email" from UserInfo or a JWT.
    oauth_username_claim: str | None = None
    # Seconds a token found valid is trusted before it is checked again (never past its expiry).
    oauth_cache_ttl: float = 300.0
    # -- browsers (issue 13) --
    # Origins whose pages may call bridge from a browser (CORS), e.g.
    # ["https://mail.example.com"]: they may also send cookies and cached Basic credentials.
    # "*" lets any page in, without credentials: it must send Authorization itself.
    cors_origins: list[str] = []
    # Run a method whose capability the session offers even when "using" leaves it out
    # (RFC 8620 §3.3 says unknownMethod): webmails that send with using [core, mail] work.
    lenient_using: bool = True
    # -- operations (issue 15) --
    # Prometheus metrics at http://metrics_host:metrics_port/metrics; off unless a port is
    # set. A listener of its own, never the JMAP one: the figures are for the operator's
    # network, not for the clients'.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # "text" lines, or "json": one object per line (time, level, logger, message, and any
    # extra fields), for a log collector.
    log_format: Literal["text", "json"] = "text"
    # Seconds a SIGTERM gives requests in progress to finish (event streams end at once);
    # then watchers, indexing and upstream sessions get a few more to log out, and bridge
    # exits.
    shutdown_timeout: float = 5.0
    # -- several instances (issues 14, 15) --
    # Processes `bridge serve` runs over the same data_dir and listening socket.
    workers: int = 1
    # How processes serving the same users agree (bridge.coordination): "process" (bridge
    # runs alone), "data-dir" (a SQLite file and lock files in data_dir, for processes on
    # one machine: --workers, or several `bridge serve` over one data_dir), a
    # "postgresql://user:password@host/db" URL (instances anywhere), or "auto": "data-dir"
    # with more than one worker, else "process".
    coordination: str = "auto"
    # Seconds a lease (a user's watcher, indexer) outlives its holder's last renewal: how
    # long the work of an instance that died stays undone.
    lease_time: float = 10.0

    @property
    def coordination_kind(self) -> str:
        if self.coordination == "auto":
            return "data-dir" if self.workers > 1 else "process"
        return self.coordination

    @property
    def imap_port(self) -> int:
        if self.upstream_port is not None:
            return self.upstream_port
        return 993 if self.upstream_tls == "implicit" else 143

    @property
    def imap_endpoint(self) -> Endpoint:
        return self._endpoint("upstream", self.upstream_host, self.imap_port, self.upstream_tls)

    @property
    def smtp_endpoint(self) -> Endpoint | None:
        """SMTP submission, on the IMAP host unless said otherwise; None when not set up."""
        if self.submission_port is None:
            return None
        host = self.submission_host or self.upstream_host
        return self._endpoint("submission", host, self.submission_port, self.submission_tls)

    @property
    def sieve_endpoint(self) -> Endpoint | None:
        """ManageSieve, on the IMAP host unless said otherwise; None when not set up."""
        if self.sieve_port is None:
            return None
        host = self.sieve_host or self.upstream_host
        return self._endpoint("sieve", host, self.sieve_port, self.sieve_tls)

    def _endpoint(self, setting: str, host: str, port: int, tls: TlsMode) -> Endpoint:
        own_ca_file: str | None = getattr(self, f"{setting}_ca_file")
        return Endpoint(
            host,
            port,
            tls,
            timeout=self.upstream_timeout,
            verify_tls=self.upstream_verify_tls,
            ca_file=own_ca_file or self.upstream_ca_file,
            connect_timeout=self.upstream_connect_timeout,
            setting=setting,
        )

    def validate(self) -> Settings:
        services = [
            ("IMAP", self.imap_endpoint, "upstream"),
            ("SMTP", self.smtp_endpoint, "submission"),
            ("ManageSieve", self.sieve_endpoint, "sieve"),
        ]
        for protocol, endpoint, flag in services:
            if endpoint is None:
                continue
            if endpoint.ca_file and not os.path.isfile(endpoint.ca_file):
                raise ConfigError(f"CA file {endpoint.ca_file} of {protocol}: no such file")
            if endpoint.tls != "plain" or self.allow_plaintext:
                continue
            if not _is_loopback(endpoint.host):
                raise ConfigError(
                    f"plain {protocol} to {endpoint.host} would send passwords in the clear; "
                    f"use --{flag}-tls implicit|starttls, or --allow-plaintext to force it"
                )
        if self.upstream_connect_timeout <= 0 or self.upstream_timeout <= 0:
            raise ConfigError("timeouts must be positive")
        if self.blob_chunk_size < 4096:
            raise ConfigError("blob_chunk_size must be at least 4096 octets")
        if self.flag_scan_interval <= 0:
            raise ConfigError("flag scan interval must be positive")
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise ConfigError(f"unknown log level {self.log_level!r}")
        if self.mail_domain is not None and not is_mailbox(f"user@{self.mail_domain}"):
            raise ConfigError(f"mail domain {self.mail_domain!r} is not a domain")
        if self.token_lifetime <= 0 or self.oauth_cache_ttl < 0:
            raise ConfigError("token_lifetime must be positive, oauth_cache_ttl not negative")
        check_cors_origins(self.cors_origins)
        if self.shutdown_timeout < 0 or self.inline_budget < 0:
            raise ConfigError("shutdown_timeout and inline_budget must not be negative")
        if self.workers < 1 or self.lease_time <= 0:
            raise ConfigError("workers must be at least 1, lease_time positive")
        if self.coordination not in {"auto", "process", "data-dir"} and not (
            self.coordination.startswith(("postgresql://", "postgres://"))
        ):
            raise ConfigError("coordination: auto, process, data-dir or a postgresql:// URL")
        if self.workers > 1 and self.coordination == "process":
            raise ConfigError('several workers cannot coordinate with coordination = "process"')
        if self.store is not None and not self.store.startswith(STORE_SCHEMES):
            raise ConfigError("store: a PostgreSQL URL (postgresql://...), or unset for SQLite")
        if self.store_connections < 1:
            raise ConfigError("store_connections must be at least 1")
        if self.pool_idle_timeout <= 0 or self.max_event_streams_per_user < 1:
            raise ConfigError("pool_idle_timeout and max_event_streams_per_user must be positive")
        return self


STORE_SCHEMES = ("postgresql://", "postgres://")


def check_cors_origins(origins: list[str]) -> None:
    """Each an origin as a browser sends it ("https://host[:port]", no path), or "*" alone."""
    if "*" in origins and len(origins) > 1:
        raise ConfigError('cors_origins: "*" stands alone (it already lets every origin in)')
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"cors_origins: {origin!r} is not an origin like https://host[:port]")


_ORIGIN = re.compile(r"https?://[^/?#\s@]+")


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
            # A list setting (cors_origins) is written "a,b" in the environment.
            is_list = isinstance(getattr(Settings(), name), list)
            values[name] = (
                [item.strip() for item in raw.split(",") if item.strip()] if is_list else raw
            )
    return values


# Written "a,b" in the environment.
_LIST_SETTINGS = frozenset({"cors_origins"})


def _list_of(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


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
        merged = with_preset(merged)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        # strict=False turns the environment's strings into ints, floats and booleans.
        settings = msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc)) from exc
    return settings.validate()
