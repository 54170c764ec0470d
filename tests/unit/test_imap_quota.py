"""QUOTAROOT/QUOTA parsing (RFC 9208) on raw server lines, and the Quota objects built."""

from __future__ import annotations

import pytest

from bridge.imap.errors import UpstreamUnavailable
from bridge.imap.models import QuotaResource, QuotaRoot
from bridge.imap.responses import parse_quota, parse_quotaroot
from bridge.imap.wire import Untagged, read_untagged
from bridge.mail.quota import quota_objects, state_of


def one(raw: bytes) -> Untagged:
    (response,) = read_untagged(raw)
    return response


def test_quotaroot_dovecot() -> None:
    assert parse_quotaroot(one(b'* QUOTAROOT INBOX "User quota"\r\n')) == (
        "INBOX",
        ["User quota"],
    )


def test_quotaroot_several_roots_and_empty_root() -> None:
    raw = b'* QUOTAROOT "Sent Items" "" user.alice\r\n'
    assert parse_quotaroot(one(raw)) == ("Sent Items", ["", "user.alice"])


def test_quotaroot_without_roots() -> None:
    assert parse_quotaroot(one(b"* QUOTAROOT INBOX\r\n")) == ("INBOX", [])


def test_quotaroot_decodes_the_mailbox_name() -> None:
    assert parse_quotaroot(one(b"* QUOTAROOT &AOk-t&AOk- x\r\n")) == ("été", ["x"])


def test_quota_dovecot() -> None:
    raw = b'* QUOTA "User quota" (STORAGE 3 102400 MESSAGE 2 10000)\r\n'
    assert parse_quota(one(raw)) == (
        "User quota",
        [QuotaResource("STORAGE", 3, 102400), QuotaResource("MESSAGE", 2, 10000)],
    )


def test_quota_empty_root_lower_case_resource() -> None:
    raw = b'* QUOTA "" (storage 10 512)\r\n'
    assert parse_quota(one(raw)) == ("", [QuotaResource("STORAGE", 10, 512)])


def test_quota_no_resources() -> None:
    assert parse_quota(one(b"* QUOTA root ()\r\n")) == ("root", [])


@pytest.mark.parametrize(
    "raw",
    [
        b"* QUOTA root\r\n",
        b"* QUOTA root (STORAGE 1)\r\n",
        b"* QUOTA root (STORAGE x 10)\r\n",
        b"* QUOTA (STORAGE 1 10)\r\n",
    ],
)
def test_quota_malformed(raw: bytes) -> None:
    with pytest.raises(UpstreamUnavailable):
        parse_quota(one(raw))


def test_quotaroot_malformed() -> None:
    with pytest.raises(UpstreamUnavailable):
        parse_quotaroot(one(b"* QUOTAROOT (INBOX)\r\n"))


def test_quota_objects() -> None:
    root = QuotaRoot(
        "",
        (
            QuotaResource("STORAGE", 3, 100),
            QuotaResource("MESSAGE", 2, 10),
            QuotaResource("MAILBOX", 1, 5),
        ),
    )
    quotas = quota_objects([root])
    by_type = {quota["resourceType"]: quota for quota in quotas}
    assert set(by_type) == {"octets", "count"}
    assert by_type["octets"]["used"] == 3 * 1024
    assert by_type["octets"]["hardLimit"] == 100 * 1024
    assert by_type["count"]["used"] == 2 and by_type["count"]["hardLimit"] == 10
    for quota in quotas:
        assert quota["name"] == "User quota"
        assert quota["scope"] == "account" and quota["types"] == ["Mail"]
        assert quota["warnLimit"] is None and quota["softLimit"] is None
        assert quota["description"] is None
    # Ids depend on the root and resource only: the same after usage changes.
    moved = QuotaRoot("", (QuotaResource("STORAGE", 9, 100), QuotaResource("MESSAGE", 5, 10)))
    assert [q["id"] for q in quota_objects([moved])] == [q["id"] for q in quotas]
    assert state_of(quota_objects([moved])) != state_of(quotas)
    assert state_of(quota_objects([root])) == state_of(quotas)
