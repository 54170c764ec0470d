"""What ``bridge doctor`` found, as typed records, and their plain-text rendering."""

from __future__ import annotations

from typing import Literal

import msgspec

from bridge.certificates import TlsInfo

# full: works as well as it can; slower: works, at a cost the detail names; none: missing.
Level = Literal["full", "slower", "none"]


class Feature(msgspec.Struct, frozen=True):
    name: str
    level: Level
    detail: str


class Service(msgspec.Struct, omit_defaults=True):
    """One upstream service: could it be reached, over what, and what does it offer."""

    protocol: str  # "IMAP", "SMTP submission", "ManageSieve"
    address: str
    tls_mode: str
    connected: bool = False
    reason: str | None = None  # why it could not be reached
    tls: TlsInfo | None = None
    capabilities: list[str] = msgspec.field(default_factory=list)
    login: str | None = None  # "ok", or why not; None when no user was given


class Folders(msgspec.Struct, frozen=True):
    count: int
    separator: str
    largest: str | None
    largest_messages: int
    special_use: dict[str, str]  # folder -> its SPECIAL-USE attribute
    roles: dict[str, str]  # folder -> the JMAP role bridge gives it


class SyncTiming(msgspec.Struct, frozen=True):
    """One full sync of the largest folder, read-only (EXAMINE)."""

    folder: str
    messages: int
    fetch_items: str
    fetch_ms: float  # EXAMINE, then UID FETCH 1:* of UIDs, flags, ids and sizes
    header_sample: int
    header_items: str
    header_ms: float  # FETCH of what a first sight of a message needs, for the sample


class Report(msgspec.Struct, omit_defaults=True):
    imap: Service
    usable: bool = False
    folders: Folders | None = None
    object_ids: str | None = None
    quota: list[str] = msgspec.field(default_factory=list)
    features: list[Feature] = msgspec.field(default_factory=list)
    sync: SyncTiming | None = None
    submission: Service | None = None
    sieve: Service | None = None


def render(report: Report) -> str:
    lines = _service(report.imap)
    if report.folders is not None:
        lines += _folders(report.folders)
    if report.object_ids is not None:
        lines.append(f"  object ids:   {report.object_ids}")
    if report.quota:
        lines.append(f"  quota:        {'; '.join(report.quota)}")
    for service in (report.submission, report.sieve):
        if service is not None:
            lines += ["", *_service(service)]
    if report.features:
        width = max(len(feature.name) for feature in report.features)
        lines += ["", "JMAP features"]
        lines += [f"  {f.name:<{width}}  {f.level:<6}  {f.detail}" for f in report.features]
    if report.sync is not None:
        lines += ["", *_sync(report.sync)]
    if not report.usable:
        verdict = "bridge cannot use this upstream"
    elif report.imap.login is None:
        verdict = "reachable; give --user to check the login and the features"
    else:
        verdict = "bridge can use this upstream"
    lines += ["", f"Result: {verdict}"]
    return "\n".join(lines) + "\n"


def _service(service: Service) -> list[str]:
    lines = [f"{service.protocol} {service.address} ({service.tls_mode})"]
    if not service.connected:
        return [*lines, f"  connect:      FAILED: {service.reason}"]
    tls = service.tls
    lines.append(f"  connect:      ok{f', {tls.version} {tls.cipher}' if tls else ', no TLS'}")
    if tls is not None:
        lines.append(f"  certificate:  {tls.subject or '(none)'}, issued by {tls.issuer}")
        lines.append(f"                valid until {tls.not_after} for {', '.join(tls.names)}")
    if service.login is not None:
        lines.append(f"  login:        {service.login}")
    if service.capabilities:
        lines += _wrapped("capabilities", service.capabilities)
    return lines


def _folders(folders: Folders) -> list[str]:
    lines = [f"  separator:    {folders.separator or '(flat)'}"]
    largest = (
        f" (largest: {folders.largest}, {folders.largest_messages} messages)"
        if folders.largest
        else ""
    )
    lines.append(f"  folders:      {folders.count}{largest}")
    uses = [f"{name} {use}" for name, use in folders.special_use.items()]
    lines += _wrapped("special-use", uses or ["none"])
    roles = [f"{name}={role}" for name, role in folders.roles.items()]
    lines += _wrapped("roles", roles or ["none"])
    return lines


def _sync(sync: SyncTiming) -> list[str]:
    return [
        f"Full sync of {sync.folder} ({sync.messages} messages, read-only)",
        f"  EXAMINE, UID FETCH 1:* ({sync.fetch_items}): {sync.fetch_ms:.0f} ms",
        f"  the newest {sync.header_sample} as first seen: {sync.header_ms:.0f} ms",
        f"    ({sync.header_items})",
    ]


def _wrapped(label: str, words: list[str], width: int = 96) -> list[str]:
    lines: list[str] = []
    current = f"  {label + ':':<14}"
    for word in (part for entry in words for part in entry.split()):
        if len(current) + len(word) > width and current.strip() != f"{label}:":
            lines.append(current.rstrip())
            current = " " * 16
        current += word + " "
    return [*lines, current.rstrip()]
