"""``bridge serve`` runs the proxy; ``bridge demo`` runs it in front of a throwaway Dovecot;
``bridge doctor`` says what an upstream offers and how bridge will fare on it."""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from bridge import logs, redaction
from bridge.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from bridge.http.balance import WorkerLoads

DEMO_USERS = {"alice": "wonderland", "bob": "builder"}
# The domain of the demo's sample mail (bridge.demo.sample): alice is alice@example.org.
DEMO_DOMAIN = "example.org"
# Where ``bridge doctor`` takes the password from, when set (else it asks on the terminal).
PASSWORD_VARIABLE = "BRIDGE_DOCTOR_PASSWORD"


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--config", help="TOML settings file (also BRIDGE_CONFIG)")
    add("--listen-host", dest="listen_host")
    add("--listen-port", dest="listen_port", type=int)
    add("--public-url", dest="public_url", help="absolute URL clients use to reach bridge")
    add("--data-dir", dest="data_dir", help="where per-user caches (SQLite) and uploads live")
    add("--store", dest="store", metavar="URL",
        help="keep the caches in PostgreSQL: postgresql://user:password@host:port/db "
             "(default: SQLite files under --data-dir)")  # fmt: skip
    add("--store-connections", dest="store_connections", type=int,
        help="connections the PostgreSQL store keeps open at most (12)")  # fmt: skip
    add("--log-level", dest="log_level", choices=["debug", "info", "warning", "error"])
    add("--log-format", dest="log_format", choices=["text", "json"],
        help="json: one object per line (time, level, logger, message, extra fields)")  # fmt: skip
    add("--metrics-port", dest="metrics_port", type=int,
        help="serve Prometheus /metrics on this port (its own listener; default off)")  # fmt: skip
    add("--metrics-host", dest="metrics_host", help="address of the /metrics listener "
        "(default 127.0.0.1)")  # fmt: skip
    add("--shutdown-timeout", dest="shutdown_timeout", type=float,
        help="seconds SIGTERM gives requests in progress before bridge exits (5)")  # fmt: skip
    add("--cors-origin", dest="cors_origins", action="append", metavar="ORIGIN",
        help="a web page's origin that may call bridge (repeat it; '*': any page, "
             "without cookies)")  # fmt: skip


def _add_upstream_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--provider", dest="provider", choices=["gmail", "fastmail", "outlook", "icloud", "yahoo"],
        help="fill hosts, ports and TLS for this provider (explicit settings win)")  # fmt: skip
    add("--upstream-host", dest="upstream_host")
    add("--upstream-port", dest="upstream_port", type=int)
    add("--upstream-tls", dest="upstream_tls", choices=["implicit", "starttls", "plain"])
    add("--no-verify-tls", dest="upstream_verify_tls", action="store_const", const=False)
    add("--upstream-ca-file", dest="upstream_ca_file",
        help="PEM file of the CAs to trust for the upstream (default: the system's)")  # fmt: skip
    add("--upstream-connect-timeout", dest="upstream_connect_timeout", type=float,
        help="seconds for connect, TLS handshake and greeting (default 10)")  # fmt: skip
    add("--upstream-timeout", dest="upstream_timeout", type=float,
        help="seconds one upstream command may wait for the server (15)")  # fmt: skip
    add("--allow-plaintext", dest="allow_plaintext", action="store_const", const=True,
        help="allow plain IMAP to a host that is not loopback")  # fmt: skip
    tls_modes = ["implicit", "starttls", "plain"]
    add("--submission-host", dest="submission_host", help="SMTP submission (default: upstream)")
    add("--submission-port", dest="submission_port", type=int,
        help="SMTP submission port (587, 465): serve EmailSubmission/*, Identity/*")  # fmt: skip
    add("--submission-tls", dest="submission_tls", choices=tls_modes)
    add("--submission-ca-file", dest="submission_ca_file", help="default: --upstream-ca-file")
    add("--sieve-host", dest="sieve_host", help="ManageSieve host (default: upstream)")
    add("--sieve-port", dest="sieve_port", type=int,
        help="ManageSieve port (usually 4190): serve VacationResponse/*")  # fmt: skip
    add("--sieve-tls", dest="sieve_tls", choices=tls_modes)
    add("--sieve-ca-file", dest="sieve_ca_file", help="default: --upstream-ca-file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridge", description="JMAP for every IMAP mailbox")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve JMAP in front of an IMAP server")
    _add_server_flags(serve)
    _add_upstream_flags(serve)
    add = serve.add_argument
    add("--request-timeout", dest="request_timeout", type=float,
        help="seconds a request may take, upstream waits included (30)")  # fmt: skip
    add("--upstream-quota", dest="upstream_quota", action="store_const", const=True,
        help="the upstream keeps quotas (IMAP QUOTA): serve RFC 9425 Quota/*")  # fmt: skip
    add("--mail-domain", dest="mail_domain",
        help="domain of logins that are not addresses: their Identity is login@domain")  # fmt: skip
    add("--push-allow-private", dest="push_allow_private", action="store_const", const=True,
        help="push subscription URLs may be http, private or loopback (tests, LANs)")  # fmt: skip
    add("--login-case", dest="login_case", choices=["auto", "insensitive", "sensitive"],
        help="does the upstream fold logins to lower case (auto: find out)")  # fmt: skip
    add("--allowed-identities", dest="allowed_identities", metavar="FILE",
        help="lines 'login address...': addresses a login may send as besides its own")  # fmt: skip
    add("--send-as-domain", dest="send_as_domain", action="store_const", const=True,
        help="a login may send as any address at its own domain")  # fmt: skip
    add("--pool-idle-timeout", dest="pool_idle_timeout", type=float,
        help="seconds an unused upstream connection stays logged in (300)")  # fmt: skip
    add("--request-threads", dest="request_threads", type=int,
        help="threads that run requests' blocking work (8)")  # fmt: skip
    add("--inline-budget", dest="inline_budget", type=float,
        help="seconds a warm cache read may run on the event loop (0.01; 0: never)")  # fmt: skip
    add("--max-event-streams-per-user", dest="max_event_streams_per_user", type=int)
    add("--max-upload-storage-per-user", dest="max_upload_storage_per_user", type=int,
        help="octets of uploads a user may keep (oldest deleted first beyond it)")  # fmt: skip
    add("--flag-scan-interval", dest="flag_scan_interval", type=float,
        help="seconds a flag change outside INBOX may lag on servers without CONDSTORE "
        "(default 60)")  # fmt: skip
    add("--token-lifetime", dest="token_lifetime", type=float,
        help="seconds a token from POST /jmap/token is good for (3600)")  # fmt: skip
    add("--oauth-introspection-url", dest="oauth_introspection_url",
        help="pass-through OAuth: RFC 7662 endpoint that names a Bearer token's login")  # fmt: skip
    add("--oauth-jwks-url", dest="oauth_jwks_url",
        help="pass-through OAuth: JWK Set that signs Bearer tokens that are JWTs")  # fmt: skip
    add("--workers", dest="workers", type=int,
        help="processes serving over one socket and data dir (1)")  # fmt: skip
    add("--coordination", dest="coordination",
        help="auto, process, data-dir or postgresql://...: how instances agree")  # fmt: skip
    add("--lease-time", dest="lease_time", type=float,
        help="seconds a dead instance's watchers and indexing stay undone (10)")  # fmt: skip
    add("--strict-using", dest="lenient_using", action="store_const", const=False,
        help="a method whose capability 'using' leaves out is unknownMethod")  # fmt: skip
    demo = commands.add_parser("demo", help="a local Dovecot with sample mail, and bridge")
    _add_server_flags(demo)
    doctor = commands.add_parser(
        "doctor", help="check an upstream: TLS, login, capabilities, what JMAP will be like"
    )
    doctor.add_argument("--config", help="TOML settings file (also BRIDGE_CONFIG)")
    _add_upstream_flags(doctor)
    doctor.add_argument("--user", help=f"log in as this user (password: ${PASSWORD_VARIABLE} "
                        "or asked on the terminal); without it, only connect")  # fmt: skip
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _flags(namespace: argparse.Namespace) -> dict[str, Any]:
    skip = {"command", "config", "user", "json"}
    return {key: value for key, value in vars(namespace).items() if key not in skip}


def serve(settings: Settings) -> int:
    logs.configure(settings.log_level, settings.log_format)
    if settings.workers == 1:
        return _serve_one(settings)
    from bridge.http.balance import WorkerLoads
    from bridge.http.supervisor import listening_socket, run_workers

    sock = listening_socket(settings.listen_host, settings.listen_port)
    loads = WorkerLoads(settings.workers)  # before the fork: the workers share it

    def worker(index: int) -> int:
        # Each worker's /metrics listens on a port of its own: metrics_port + index.
        port = settings.metrics_port and settings.metrics_port + index
        own = msgspec.structs.replace(settings, metrics_port=port)
        return _serve_one(own, sock, (loads, index))

    return run_workers(settings.workers, sock, worker)


def _serve_one(
    settings: Settings,
    sock: socket.socket | None = None,
    worker: tuple[WorkerLoads, int] | None = None,
) -> int:
    import uvicorn

    from bridge.http.app import API_PATH, create_app
    from bridge.http.balance import LoadBalance
    from bridge.http.drain import DrainingServer, exit_status_zero

    app = create_app(settings)
    served: ASGIApp = app if worker is None else LoadBalance(app, *worker, path=API_PATH)
    config = uvicorn.Config(
        served,
        host=settings.listen_host,
        port=settings.listen_port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        # Uploads and downloads stay open as long as the client keeps them (event streams
        # end at once): shutdown waits this long for them, not forever.
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    # uvicorn set up its handlers in Config: now every handler gets the redacting filter,
    # and the format asked for.
    redaction.install()
    if settings.log_format == "json":
        logs.use_json()
    server = DrainingServer(config, app.state.draining)
    with exit_status_zero():
        server.run(sockets=None if sock is None else [sock])
    server.leave_stragglers()
    return 0


def demo(flags: dict[str, Any], config_file: str | None) -> None:
    # The cache of a demo made here goes with the demo mail when it stops.
    given = flags.get("data_dir")
    data_dir = given or tempfile.mkdtemp(prefix="bridge-demo-")
    try:
        _demo(flags, config_file, data_dir)
    finally:
        if not given:
            shutil.rmtree(data_dir, ignore_errors=True)


def _demo(flags: dict[str, Any], config_file: str | None, data_dir: str) -> None:
    from bridge.demo.dovecot import Dovecot, free_port
    from bridge.demo.relay import LocalDelivery
    from bridge.demo.seed import seed_demo

    # Sending works too: Dovecot's submission service relays to a local receiver that
    # delivers to the demo users with Dovecot's LDA, and refuses any other address.
    # Sieve runs at that delivery, and its vacation replies take the same way.
    relay_port = free_port()
    with (
        Dovecot(
            dict(DEMO_USERS), relay_port=relay_port, sieve=True, sieve_smtp_port=relay_port
        ) as dovecot,
        LocalDelivery(dovecot, DEMO_DOMAIN, DEMO_USERS, relay_port),
    ):
        for user in DEMO_USERS:
            seed_demo(dovecot, user)
        flags = {
            **flags,
            "upstream_host": dovecot.host,
            "upstream_port": dovecot.port,
            "upstream_tls": "plain",
            "upstream_quota": True,
            "submission_port": dovecot.submission_port,
            "submission_tls": "plain",
            "mail_domain": DEMO_DOMAIN,
            "sieve_port": dovecot.sieve_port,
            "sieve_tls": "plain",
            "data_dir": data_dir,
        }
        settings = load_settings(flags, config_file=config_file)
        url = settings.public_url or f"http://{settings.listen_host}:{settings.listen_port}"
        print(f"Dovecot (IMAP) on {dovecot.host}:{dovecot.port}", flush=True)
        print(f"ManageSieve on  {dovecot.host}:{dovecot.sieve_port}", flush=True)
        print(f"JMAP session:  {url}/jmap/session", flush=True)
        for user, password in DEMO_USERS.items():
            print(f"  user {user!r} password {password!r} ({user}@{DEMO_DOMAIN})", flush=True)
        serve(settings)


def doctor(settings: Settings, user: str | None, as_json: bool) -> int:
    """Print what the upstream offers; 0 when bridge can use it, else 1."""
    from bridge.doctor import examine, render

    # The report says why a connection failed: the log's own warnings would repeat it.
    logs.configure("error")
    password = ""
    if user is not None:
        password = os.environ.get(PASSWORD_VARIABLE) or getpass.getpass(f"Password for {user}: ")
    report = examine(settings, user, password)
    if as_json:
        print(msgspec.json.format(msgspec.json.encode(report).decode()))
    else:
        print(render(report), end="")
    return 0 if report.usable else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            demo(_flags(args), args.config)
        elif args.command == "doctor":
            return doctor(
                load_settings(_flags(args), config_file=args.config), args.user, args.json
            )
        else:
            return serve(load_settings(_flags(args), config_file=args.config))
    except ConfigError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
