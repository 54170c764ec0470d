"""Login throttling that a guesser cannot turn against a user, and logins folded to one
account the way the upstream folds them.

Client addresses are told apart by X-Forwarded-For, which uvicorn takes from loopback.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bridge.demo.dovecot import Dovecot
from tests.integration.server import BridgeServer


def _session(bridge: BridgeServer, user: str, password: str, address: str) -> httpx.Response:
    return httpx.get(
        bridge.url + "/jmap/session",
        auth=(user, password),
        headers={"X-Forwarded-For": address},
    )


def test_guesses_from_anywhere_never_lock_out_the_owner(
    bridge: BridgeServer, account: tuple[str, str]
) -> None:
    user, password = account
    assert _session(bridge, user, password, "192.0.2.1").status_code == 200
    guesser = "198.51.100.7"
    statuses = [_session(bridge, user, f"guess{n}", guesser).status_code for n in range(7)]
    assert statuses == [401] * 5 + [429] * 2
    throttled = _session(bridge, user, "guess7", guesser)
    assert int(throttled.headers["retry-after"]) > 0
    assert throttled.headers["content-type"].startswith("application/problem+json")
    # Wrong guesses from many more addresses: each only counts against its own address.
    for n in range(10):
        assert _session(bridge, user, "wrong", f"203.0.113.{n}").status_code == 401
    # The owner's password, verified before, passes from anywhere, the guesser's too.
    for address in ("192.0.2.1", "192.0.2.2", guesser):
        assert _session(bridge, user, password, address).status_code == 200


def test_an_address_guessing_many_logins_is_held_back(
    bridge: BridgeServer, upstream: Dovecot
) -> None:
    spray = "198.51.100.99"
    statuses = [_session(bridge, f"nobody{n}", "guess", spray).status_code for n in range(21)]
    assert statuses == [401] * 20 + [429]
    # The address is held back for a password the upstream has not vouched for yet...
    user, password = upstream.spare.pop(0)  # type: ignore[attr-defined]
    assert _session(bridge, user, password, spray).status_code == 429
    # ...while another address is not.
    assert _session(bridge, user, password, "198.51.100.100").status_code == 200


def test_logins_differing_in_case_are_one_account(
    bridge: BridgeServer, account: tuple[str, str]
) -> None:
    user, password = account
    spellings = [user.upper(), user.capitalize(), user]
    sessions = [_session(bridge, name, password, "192.0.2.50") for name in spellings]
    assert [s.status_code for s in sessions] == [200] * 3
    assert {s.json()["username"] for s in sessions} == {user}
    assert len({s.json()["primaryAccounts"]["urn:ietf:params:jmap:mail"] for s in sessions}) == 1
    # One set of pooled connections, under the folded login only.
    assert bridge.bridge.pool.stats(user.upper()) == (0, 0)
    assert bridge.bridge.pool.stats(user)[0] >= 1
    # What one spelling creates, another sees: one cache.
    shouting, polite = bridge.client(user.upper(), password), bridge.client(user.title(), password)
    created = shouting.call("Mailbox/set", {"create": {"m": {"name": "Folded"}}})["created"]
    listed = polite.call("Mailbox/get", {"ids": [created["m"]["id"]]})["list"]
    assert [mailbox["name"] for mailbox in listed] == ["Folded"]
    shouting.close()
    polite.close()


@pytest.mark.parametrize("mode", ["sensitive", "insensitive"])
def test_login_case_setting(mode: str, upstream: Dovecot, tmp_path: Path) -> None:
    user, password = upstream.spare.pop(0)  # type: ignore[attr-defined]
    with BridgeServer(upstream.host, upstream.port, tmp_path, login_case=mode) as server:
        upper = _session(server, user.upper(), password, "192.0.2.60")
        lower = _session(server, user, password, "192.0.2.60")
    assert upper.status_code == lower.status_code == 200
    same = upper.json()["primaryAccounts"] == lower.json()["primaryAccounts"]
    assert same is (mode == "insensitive")
    assert upper.json()["username"] == (user if mode == "insensitive" else user.upper())
