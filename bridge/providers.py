"""Settings for the common mail providers (``provider = "gmail"`` and so on).

A preset fills only what the provider fixes: its IMAP and SMTP submission hosts, ports
and TLS, and what it is known to do (Gmail keeps quotas and folds logins to lower case).
Any setting given explicitly, in the file, the environment or a flag, wins over it.

Which SASL mechanism logs in is not a setting: a password goes as LOGIN or PLAIN, an
OAuth access token (pass-through OAuth, bridge.http.bearer) as OAUTHBEARER or XOAUTH2,
whichever the server offers. Gmail, Outlook and Yahoo take access tokens; iCloud and
Fastmail take app passwords only.
"""

from __future__ import annotations

from typing import Any, Literal

Provider = Literal["gmail", "fastmail", "outlook", "icloud", "yahoo"]

_IMPLICIT_465 = {"submission_port": 465, "submission_tls": "implicit"}
_STARTTLS_587 = {"submission_port": 587, "submission_tls": "starttls"}


def _preset(imap_host: str, smtp_host: str, submission: dict[str, Any],
            **known: Any) -> dict[str, Any]:  # fmt: skip
    """Every provider here serves IMAP over implicit TLS on 993."""
    return {"upstream_host": imap_host, "upstream_port": 993, "upstream_tls": "implicit",
            "submission_host": smtp_host, **submission, **known}  # fmt: skip


PRESETS: dict[str, dict[str, Any]] = {
    # Gmail keeps quotas, and its addresses are case-insensitive (nothing to learn).
    "gmail": _preset(
        "imap.gmail.com",
        "smtp.gmail.com",
        _IMPLICIT_465,
        upstream_quota=True,
        login_case="insensitive",
    ),
    "fastmail": _preset("imap.fastmail.com", "smtp.fastmail.com", _IMPLICIT_465),
    "outlook": _preset("outlook.office365.com", "smtp.office365.com", _STARTTLS_587),
    "icloud": _preset("imap.mail.me.com", "smtp.mail.me.com", _STARTTLS_587),
    "yahoo": _preset("imap.mail.yahoo.com", "smtp.mail.yahoo.com", _IMPLICIT_465),
}


def with_preset(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` over the preset of the provider they name (if any); ValueError for a
    provider without one."""
    provider = values.get("provider")
    if provider is None:
        return values
    preset = PRESETS.get(str(provider).lower())
    if preset is None:
        raise ValueError(f"unknown provider {provider!r} (one of {', '.join(PRESETS)})")
    return {**preset, **values, "provider": str(provider).lower()}
