"""Looking at an upstream as bridge would, without changing anything there.

Through bridge's own clients: the IMAP session layer (connect, TLS, login) and
``ImapConnection`` for the rest; folders are opened with EXAMINE, messages read with
BODY.PEEK, so no flag, no folder and no message changes. SMTP submission gets a connect and
EHLO only; ManageSieve a connect, its capabilities and (with a user) a login.
"""

from __future__ import annotations

import contextlib
import time

from bridge.certificates import tls_info
from bridge.config import Settings
from bridge.doctor.report import Feature, Folders, Report, Service, SyncTiming
from bridge.doctor.verdicts import ImapFacts, features
from bridge.endpoint import Endpoint
from bridge.imap.connection import ImapConnection
from bridge.imap.errors import CommandFailed, UpstreamError, UpstreamUnavailable
from bridge.imap.models import MailboxListing, MessageMeta
from bridge.imap.responses import format_sequence_set
from bridge.imap.search import plan_search
from bridge.imap.session import connect_session, log_in, shutdown_quietly
from bridge.mail.roles import assign_roles
from bridge.mail.sync import new_message_items
from bridge.sieve.client import ManageSieve
from bridge.sieve.errors import SieveAuthFailed, SieveError
from bridge.smtp.client import SmtpUnavailable, probe

# Messages whose headers the timing fetches, as a first sight of new mail would.
HEADER_SAMPLE = 200
# Non-ASCII text for the CHARSET UTF-8 search probe.
_UTF8_PROBE = "grüße"


def examine(settings: Settings, username: str | None, password: str) -> Report:
    """Everything doctor reports; ``username`` None checks connection and TLS only."""
    report = _imap(settings.imap_endpoint, username, password, settings.flag_scan_interval)
    if settings.smtp_endpoint is not None:
        report.submission = _submission(settings.smtp_endpoint)
    if settings.sieve_endpoint is not None:
        report.sieve, vacation = _sieve(settings.sieve_endpoint, username, password)
        if vacation is not None:
            report.features.append(vacation)
    return report


def _service(endpoint: Endpoint, protocol: str) -> Service:
    return Service(protocol, endpoint.address, endpoint.tls)


def _imap(
    endpoint: Endpoint, username: str | None, password: str, flag_scan_interval: float
) -> Report:
    service = _service(endpoint, "IMAP")
    report = Report(service)
    try:
        session = connect_session(endpoint)
    except UpstreamUnavailable as exc:
        service.reason = exc.reason or str(exc)
        return report
    service.connected = True
    service.tls = tls_info(session.client.socket())
    service.capabilities = sorted(session.capabilities)
    if username is None:
        shutdown_quietly(session.client)
        report.usable = True
        return report
    try:
        log_in(session, username, password)
    except UpstreamError as exc:
        shutdown_quietly(session.client)
        service.login = f"FAILED: {exc}"
        return report
    service.login = f"ok as {username}"
    with ImapConnection(session, endpoint) as connection:
        service.capabilities = sorted(connection.capabilities)
        try:
            _look_inside(connection, report, flag_scan_interval)
        except (UpstreamError, ValueError) as exc:
            service.login += f"; then failed: {exc}"
            return report
    report.usable = True
    return report


def _look_inside(connection: ImapConnection, report: Report, flag_scan_interval: float) -> None:
    listings = connection.list_mailboxes()
    selectable = [entry for entry in listings if entry.selectable and entry.status]
    largest = max(selectable, key=_message_count, default=None)
    report.folders = Folders(
        count=len(listings),
        separator=connection.delimiter,
        largest=largest.name if largest else None,
        largest_messages=_message_count(largest) if largest else 0,
        special_use={e.name: e.special_use for e in listings if e.special_use},
        roles=assign_roles(listings),
    )
    kind = connection.object_ids
    report.object_ids = (
        f"{kind.name}: {' '.join(kind.fetch_items)}"
        + (f", folders {kind.status_item}" if kind.status_item else "")
        if kind
        else "none (ids are derived)"
    )
    if connection.has("QUOTA"):
        report.quota = [
            f"{root.name or '(root)'}: "
            + ", ".join(f"{r.name} {r.usage}/{r.limit}" for r in root.resources)
            for root in connection.quota_roots("INBOX")
        ]
    sample: list[MessageMeta] = []
    folder = largest.name if largest else "INBOX"
    if largest is not None and _message_count(largest) > 0:
        report.sync, sample = _time_sync(connection, largest)
    else:
        connection.select(folder, readonly=True)
    utf8_ok, refusal = _search_utf8(connection)
    facts = ImapFacts(
        capabilities=connection.capabilities,
        enabled=connection.enabled,
        object_ids=kind,
        folder_ids_seen=bool(largest and largest.status and largest.status.guid)
        if largest
        else None,
        email_ids_seen=any(m.object_id for m in sample) if sample else None,
        thread_ids_seen=any(m.thread_object_id for m in sample) if sample else None,
        search_utf8=utf8_ok,
        search_refusal=refusal,
        flag_scan_interval=flag_scan_interval,
    )
    report.features = features(facts)


def _message_count(listing: MailboxListing) -> int:
    return listing.status.messages if listing.status else 0


def _time_sync(
    connection: ImapConnection, folder: MailboxListing
) -> tuple[SyncTiming, list[MessageMeta]]:
    """What a first sync of ``folder`` costs: EXAMINE and every UID with flags, ids and
    size; then the headers of the newest messages, as a first sight of them fetches."""
    started = time.perf_counter()
    connection.select(folder.name, readonly=True)
    every = connection.fetch_meta("1:*", extra=["RFC822.SIZE"])
    fetched = time.perf_counter()
    newest = sorted(every.messages)[-HEADER_SAMPLE:]
    items = new_message_items(connection)
    sample = connection.fetch_meta(format_sequence_set(newest), extra=items)
    done = time.perf_counter()
    timing = SyncTiming(
        folder=folder.name,
        messages=len(every.messages),
        fetch_items=" ".join(connection.meta_items(["RFC822.SIZE"])),
        fetch_ms=(fetched - started) * 1000,
        header_sample=len(newest),
        header_items=" ".join(items),
        header_ms=(done - fetched) * 1000,
    )
    return timing, list(sample.messages.values())


def _search_utf8(connection: ImapConnection) -> tuple[bool | None, str | None]:
    """Whether the selected folder can be searched for non-ASCII text (CHARSET UTF-8)."""
    if connection.selected is None:
        return None, None
    plan = plan_search({"text": _UTF8_PROBE}, capabilities=connection.capabilities)
    try:
        connection.search(plan.criteria, utf8=plan.needs_utf8)
    except CommandFailed as exc:
        return False, exc.code or exc.status
    return True, None


def _submission(endpoint: Endpoint) -> Service:
    service = _service(endpoint, "SMTP submission")
    try:
        found = probe(endpoint)
    except SmtpUnavailable as exc:
        service.reason = exc.reason or str(exc)
        return service
    service.connected = True
    service.tls = found.tls
    service.capabilities = [
        " ".join([name.upper(), *value.split()]) for name, value in sorted(found.extensions.items())
    ]
    return service


def _sieve(
    endpoint: Endpoint, username: str | None, password: str
) -> tuple[Service, Feature | None]:
    service = _service(endpoint, "ManageSieve")
    try:
        sieve = ManageSieve.connect(endpoint)
    except SieveError as exc:
        service.reason = getattr(exc, "reason", None) or str(exc)
        return service, Feature("VacationResponse", "none", f"ManageSieve: {service.reason}")
    with contextlib.closing(sieve):
        service.connected = True
        service.tls = tls_info(sieve.socket)
        service.capabilities = [
            f"{name} {value}".strip() for name, value in sorted(sieve.capabilities.items())
        ]
        if username is not None:
            try:
                sieve.authenticate(username, password)
                service.login = f"ok as {username}"
                sieve.logout()
            except (SieveAuthFailed, SieveError) as exc:
                service.login = f"FAILED: {exc}"
    if "vacation" in sieve.extensions:
        return service, Feature("VacationResponse", "full", "Sieve vacation over ManageSieve")
    return service, Feature("VacationResponse", "none", "the Sieve server has no vacation")
