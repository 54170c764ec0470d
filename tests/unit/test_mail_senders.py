"""The sender rule: a login's own address, what the operator grants, the opt-in domain rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.mail.senders import Grants, may_send_as

GRANTS = """\
# login   extra addresses
alice     Sales@Example.org  *@lists.example   # a comment
alice     support@example.org
bob       not-an-address
carol
"""


@pytest.mark.parametrize(
    ("login", "address", "allowed"),
    [
        ("alice", "sales@example.org", True),
        ("alice", "SUPPORT@example.org", True),
        ("alice", "anyone@lists.example", True),
        ("alice", "*@lists.example", True),
        ("alice", "bob@example.org", False),
        ("alice", "*@example.org", False),
        ("bob", "not-an-address", False),
        ("Alice", "sales@example.org", False),
    ],
)
def test_grants(login: str, address: str, allowed: bool) -> None:
    assert Grants.parse(GRANTS).allows(login, address) is allowed


def test_may_send_as(tmp_path: Path) -> None:
    path = tmp_path / "identities"
    path.write_text(GRANTS)
    own = "alice@example.org"
    assert may_send_as("alice", own, "Alice@Example.org")
    assert not may_send_as("alice", own, "bob@example.org")
    assert may_send_as("alice", own, "bob@example.org", send_as_domain=True)
    assert not may_send_as("alice", own, "bob@example.net", send_as_domain=True)
    assert may_send_as("alice", own, "sales@example.org", allowed_identities=str(path))
    assert not may_send_as("alice", None, "alice@example.org")
    assert not may_send_as("alice", own, "sales@example.org", allowed_identities="/nonexistent")
