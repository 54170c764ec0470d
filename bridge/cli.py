"""``bridge serve`` runs the proxy; ``bridge demo`` runs it in front of a throwaway Dovecot."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from bridge.config import ConfigError, Settings, load_settings

DEMO_USERS = {"alice": "wonderland", "bob": "builder"}
# The domain of the demo's sample mail (bridge.demo.sample): alice is alice@example.org.
DEMO_DOMAIN = "example.org"


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--config", help="TOML settings file (also BRIDGE_CONFIG)")
    add("--listen-host", dest="listen_host")
    add("--listen-port", dest="listen_port", type=int)
    add("--public-url", dest="public_url", help="absolute URL clients use to reach bridge")
    add("--data-dir", dest="data_dir", help="where per-user caches live")
    add("--log-level", dest="log_level", choices=["debug", "info", "warning", "error"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridge", description="JMAP for every IMAP mailbox")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve JMAP in front of an IMAP server")
    _add_server_flags(serve)
    add = serve.add_argument
    add("--upstream-host", dest="upstream_host")
    add("--upstream-port", dest="upstream_port", type=int)
    add("--upstream-tls", dest="upstream_tls", choices=["implicit", "starttls", "plain"])
    add("--no-verify-tls", dest="upstream_verify_tls", action="store_const", const=False)
    add("--allow-plaintext", dest="allow_plaintext", action="store_const", const=True,
        help="allow plain IMAP to a host that is not loopback")  # fmt: skip
    add("--upstream-timeout", dest="upstream_timeout", type=float,
        help="seconds one upstream command may wait for the server (15)")  # fmt: skip
    add("--request-timeout", dest="request_timeout", type=float,
        help="seconds a request may take, upstream waits included (30)")  # fmt: skip
    add("--upstream-quota", dest="upstream_quota", action="store_const", const=True,
        help="the upstream keeps quotas (IMAP QUOTA): serve RFC 9425 Quota/*")  # fmt: skip
    tls_modes = ["implicit", "starttls", "plain"]
    add("--submission-host", dest="submission_host", help="SMTP submission (default: upstream)")
    add("--submission-port", dest="submission_port", type=int,
        help="SMTP submission port (587, 465): serve EmailSubmission/*, Identity/*")  # fmt: skip
    add("--submission-tls", dest="submission_tls", choices=tls_modes)
    add("--mail-domain", dest="mail_domain",
        help="domain of logins that are not addresses: their Identity is login@domain")  # fmt: skip
    add("--sieve-host", dest="sieve_host", help="ManageSieve host (default: upstream)")
    add("--sieve-port", dest="sieve_port", type=int,
        help="ManageSieve port (usually 4190): serve VacationResponse/*")  # fmt: skip
    add("--sieve-tls", dest="sieve_tls", choices=tls_modes)
    add("--push-allow-private", dest="push_allow_private", action="store_const", const=True,
        help="push subscription URLs may be http, private or loopback (tests, LANs)")  # fmt: skip
    demo = commands.add_parser("demo", help="a local Dovecot with sample mail, and bridge")
    _add_server_flags(demo)
    return parser


def _flags(namespace: argparse.Namespace) -> dict[str, Any]:
    skip = {"command", "config"}
    return {key: value for key, value in vars(namespace).items() if key not in skip}


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(settings: Settings) -> None:
    import uvicorn

    from bridge.http.app import create_app

    _configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.listen_host,
        port=settings.listen_port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        # Event streams stay open until the client leaves: shutdown waits 5 s, not forever.
        timeout_graceful_shutdown=5,
    )


def demo(flags: dict[str, Any], config_file: str | None) -> None:
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
            "data_dir": flags.get("data_dir") or tempfile.mkdtemp(prefix="bridge-demo-"),
        }
        settings = load_settings(flags, config_file=config_file)
        url = settings.public_url or f"http://{settings.listen_host}:{settings.listen_port}"
        print(f"Dovecot (IMAP) on {dovecot.host}:{dovecot.port}", flush=True)
        print(f"ManageSieve on  {dovecot.host}:{dovecot.sieve_port}", flush=True)
        print(f"JMAP session:  {url}/jmap/session", flush=True)
        for user, password in DEMO_USERS.items():
            print(f"  user {user!r} password {password!r} ({user}@{DEMO_DOMAIN})", flush=True)
        serve(settings)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            demo(_flags(args), args.config)
        else:
            serve(load_settings(_flags(args), config_file=args.config))
    except ConfigError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
