"""VacationResponse (RFC 8621 §8) over the test Dovecot's ManageSieve, end to end.

The module runs a Dovecot of its own with ManageSieve and Sieve at delivery, whose vacation
replies go to an SMTP sink, and a bridge with sieve_port set. Each test has a user of its
own. "Another client" is a direct ManageSieve session (bridge.sieve.client).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.demo.dovecot import Dovecot, free_port
from bridge.mail.capabilities import VACATION
from bridge.mail.vacation_script import SCRIPT_NAME
from bridge.sieve.client import ManageSieve, SieveConfig
from tests.integration.server import USING, BridgeServer, JmapClient
from tests.integration.smtp_sink import SmtpSink
from tests.integration.test_push import Events, states

VACATION_USING = [*USING, VACATION]
USERS = {f"vac{number:02d}": f"pw-{number:02d}" for number in range(40)}
RULES = (
    'require ["fileinto"];\r\n'
    'if header :contains "subject" "report" {\r\n  fileinto "Reports";\r\n  stop;\r\n}\r\n'
)


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def sieve_dovecot(sink: SmtpSink) -> Iterator[Dovecot]:
    with Dovecot(dict(USERS), sieve=True, sieve_smtp_port=sink.port) as dovecot:
        dovecot.spare = list(USERS.items())  # type: ignore[attr-defined]
        yield dovecot


@pytest.fixture(scope="module")
def vacation_bridge(
    sieve_dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeServer]:
    with BridgeServer(
        sieve_dovecot.host, sieve_dovecot.port, tmp_path_factory.mktemp("vacation"),
        sieve_port=sieve_dovecot.sieve_port, sieve_tls="plain",
    ) as server:  # fmt: skip
        yield server


@pytest.fixture
def login(sieve_dovecot: Dovecot) -> tuple[str, str]:
    return sieve_dovecot.spare.pop(0)  # type: ignore[attr-defined]


@pytest.fixture
def client(vacation_bridge: BridgeServer, login: tuple[str, str]) -> Iterator[JmapClient]:
    client = vacation_bridge.client(*login)
    yield client
    client.close()


@pytest.fixture
def direct(sieve_dovecot: Dovecot, login: tuple[str, str]) -> Iterator[ManageSieve]:
    """Another ManageSieve client of the same user."""
    config = SieveConfig(sieve_dovecot.host, sieve_dovecot.sieve_port, tls="plain", timeout=10)
    with ManageSieve.open(config, *login) as session:
        yield session


def call(client: JmapClient, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call; its response arguments, or {"error": ...}."""
    body = {"accountId": client.account_id, **(args or {})}
    [[name, result, _]] = client.request([[method, body, "v"]], using=VACATION_USING)
    return {"error": result} if name == "error" else result


def get(client: JmapClient) -> dict[str, Any]:
    [vacation] = call(client, "VacationResponse/get", {"ids": None})["list"]
    return vacation


def update(client: JmapClient, patch: dict[str, Any], **args: Any) -> dict[str, Any]:
    return call(client, "VacationResponse/set", {"update": {"singleton": patch}, **args})


def active(session: ManageSieve) -> str | None:
    return next((s.name for s in session.list_scripts() if s.active), None)


def use_rules(session: ManageSieve, name: str = "mine", rules: str = RULES) -> None:
    session.put_script(name, rules)
    session.set_active(name)


AWAY = {
    "isEnabled": True,
    "fromDate": "2020-01-01T00:00:00Z",
    "toDate": "2100-01-01T00:00:00Z",
    "subject": "Away: «back in May»",
    "textBody": "I am away.\nBack in May.",
    "htmlBody": "<p>I am <b>away</b>.</p>",
}


def test_capability_and_the_default_object(client: JmapClient) -> None:
    session = client.session
    assert session["capabilities"][VACATION] == {}
    assert session["accounts"][client.account_id]["accountCapabilities"][VACATION] == {}
    result = call(client, "VacationResponse/get", {"ids": ["singleton", "other", "other"]})
    assert result["list"] == [
        {"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None,
         "subject": None, "textBody": None, "htmlBody": None}
    ]  # fmt: skip
    assert result["notFound"] == ["other"]
    assert isinstance(result["state"], str) and result["state"]
    only = call(client, "VacationResponse/get", {"properties": ["isEnabled"]})
    assert only["list"] == [{"id": "singleton", "isEnabled": False}]
    assert only["state"] == result["state"]
    # Without the capability in "using" the methods run all the same (lenient_using).
    [[name, _, _]] = client.request(
        [["VacationResponse/get", {"accountId": client.account_id}, "v"]]
    )
    assert name == "VacationResponse/get"


def test_round_trip_keeps_the_users_rules(client: JmapClient, direct: ManageSieve) -> None:
    use_rules(direct)
    before = call(client, "VacationResponse/get")["state"]
    result = update(client, AWAY, ifInState=before)
    assert result["updated"] == {"singleton": None}, result
    assert result["oldState"] == before and result["newState"] != before
    assert get(client) == {"id": "singleton", **AWAY}
    assert call(client, "VacationResponse/get")["state"] == result["newState"]

    # On the server: bridge's script is active, replies, and runs the user's rules.
    assert active(direct) == SCRIPT_NAME
    script = direct.get_script(SCRIPT_NAME)
    assert 'include :personal :optional "mine";' in script
    assert script.index("vacation :days") < script.index("include :personal")
    assert direct.get_script("mine") == RULES

    # Off again: the user's script is the active one, the texts stay for next time.
    result = update(client, {"isEnabled": False})
    assert result["updated"] == {"singleton": None}
    assert active(direct) == "mine"
    assert get(client) == {"id": "singleton", **AWAY, "isEnabled": False}
    assert {s.name for s in direct.list_scripts()} == {"mine", SCRIPT_NAME}

    # An update that changes nothing writes nothing.
    same = update(client, {"isEnabled": False, "subject": AWAY["subject"]})
    assert same["updated"] == {"singleton": None}
    assert same["newState"] == same["oldState"] == result["newState"]


def test_without_rules_of_the_user(client: JmapClient, direct: ManageSieve) -> None:
    assert update(client, {"isEnabled": True})["updated"] == {"singleton": None}
    assert get(client)["isEnabled"] is True
    assert active(direct) == SCRIPT_NAME
    assert "include :personal" not in direct.get_script(SCRIPT_NAME)
    update(client, {"isEnabled": False})
    assert active(direct) is None


def test_another_client_activates_its_own_script(client: JmapClient, direct: ManageSieve) -> None:
    use_rules(direct, "first")
    update(client, {"isEnabled": True, "subject": "Gone"})
    state = call(client, "VacationResponse/get")["state"]
    use_rules(direct, "second", "keep;\r\n")  # say, a webmail's filter editor
    after = call(client, "VacationResponse/get")
    assert after["list"][0]["isEnabled"] is False
    assert after["list"][0]["subject"] == "Gone"
    assert after["state"] != state
    # On again: the script now active is the one kept running.
    update(client, {"isEnabled": True})
    assert active(direct) == SCRIPT_NAME
    assert 'include :personal :optional "second";' in direct.get_script(SCRIPT_NAME)
    update(client, {"isEnabled": False})
    assert active(direct) == "second"


@pytest.mark.parametrize(
    ("rules", "culprit"),
    [
        ('require "vacation";\r\nvacation "mine";\r\n', "vacation"),
        ('require ["reject"];\r\nif size :over 1M { reject "too big"; }\r\n', "reject"),
    ],
)
def test_refuses_rules_that_cannot_run_beside_a_reply(
    client: JmapClient, direct: ManageSieve, rules: str, culprit: str
) -> None:
    use_rules(direct, "mine", rules)
    state = call(client, "VacationResponse/get")["state"]
    result = update(client, {"isEnabled": True})
    error = result["notUpdated"]["singleton"]
    assert error["type"] == "forbidden"
    assert '"mine"' in error["description"] and culprit in error["description"]
    assert result["updated"] is None and result["newState"] == state
    assert active(direct) == "mine"
    assert SCRIPT_NAME not in {s.name for s in direct.list_scripts()}


def test_refuses_what_it_finds_through_an_include(client: JmapClient, direct: ManageSieve) -> None:
    direct.put_script("auto", 'require "vacation";\r\nvacation "from elsewhere";\r\n')
    use_rules(direct, "main", 'require "include";\r\ninclude :personal "auto";\r\n')
    error = update(client, {"isEnabled": True})["notUpdated"]["singleton"]
    assert error["type"] == "forbidden" and '"auto"' in error["description"]
    assert active(direct) == "main"


def test_leaves_alone_a_script_of_its_name_it_did_not_write(
    client: JmapClient, direct: ManageSieve
) -> None:
    direct.put_script(SCRIPT_NAME, "keep;\r\n")
    assert get(client)["isEnabled"] is False
    error = update(client, {"isEnabled": True})["notUpdated"]["singleton"]
    assert error["type"] == "forbidden"
    assert direct.get_script(SCRIPT_NAME) == "keep;\r\n"


@pytest.mark.parametrize(
    ("patch", "properties"),
    [
        ({"isEnabled": "yes"}, ["isEnabled"]),
        ({"isEnabled": None}, ["isEnabled"]),
        ({"fromDate": "2026-01-01"}, ["fromDate"]),
        ({"toDate": "2026-01-01T00:00:00+02:00", "fromDate": 5}, ["fromDate", "toDate"]),
        ({"toDate": "2026-02-30T00:00:00Z"}, ["toDate"]),
        ({"subject": "two\r\nBcc: victim@example.org"}, ["subject"]),
        ({"textBody": "nul\x00"}, ["textBody"]),
        ({"htmlBody": ["<p>"]}, ["htmlBody"]),
        ({"id": "other"}, ["id"]),
        ({"colour": "blue"}, ["colour"]),
    ],
)
def test_invalid_properties(
    client: JmapClient, direct: ManageSieve, patch: dict[str, Any], properties: list[str]
) -> None:
    result = update(client, patch)
    error = result["notUpdated"]["singleton"]
    assert error["type"] == "invalidProperties"
    assert error["properties"] == properties
    assert result["newState"] == result["oldState"]
    assert direct.list_scripts() == []


def test_other_set_errors(client: JmapClient) -> None:
    result = call(client, "VacationResponse/set", {
        "create": {"new": {"isEnabled": True}},
        "update": {"nope": {"isEnabled": True}, "singleton": {"subject/x": "y"}},
        "destroy": ["singleton", "nope"],
    })  # fmt: skip
    assert result["notCreated"]["new"]["type"] == "singleton"
    assert result["notUpdated"]["nope"]["type"] == "notFound"
    assert result["notUpdated"]["singleton"]["type"] == "invalidPatch"
    assert result["notDestroyed"]["singleton"]["type"] == "singleton"
    assert result["notDestroyed"]["nope"]["type"] == "notFound"
    assert result["created"] is None and result["destroyed"] is None
    mismatch = update(client, {"isEnabled": True}, ifInState="stale")
    assert mismatch["error"]["type"] == "stateMismatch"
    unknown = call(client, "VacationResponse/set", {"update": {}, "onSuccess": True})
    assert unknown["error"]["type"] == "invalidArguments"
    bad_get = call(client, "VacationResponse/get", {"properties": ["isEnabled", "colour"]})
    assert bad_get["error"]["type"] == "invalidArguments"
    assert get(client)["isEnabled"] is False


def test_unreachable_managesieve_is_an_error(
    sieve_dovecot: Dovecot, login: tuple[str, str], tmp_path: Path
) -> None:
    with BridgeServer(
        sieve_dovecot.host, sieve_dovecot.port, tmp_path,
        sieve_port=free_port(), sieve_tls="plain",
    ) as server:  # fmt: skip
        client = server.client(*login)
        assert call(client, "VacationResponse/get")["error"]["type"] == "serverUnavailable"
        assert update(client, {"isEnabled": True})["error"]["type"] == "serverUnavailable"
        client.close()


def test_a_set_is_pushed(client: JmapClient) -> None:
    events = Events(client, "types=VacationResponse&closeafter=state&ping=0")
    result = update(client, {"subject": "Pushed"})
    name, data, _ = events.next(timeout=10)
    assert name == "state"
    assert states(data, client.account_id) == {"VacationResponse": result["newState"]}


def test_delivery_runs_the_users_rule_and_replies(
    client: JmapClient, direct: ManageSieve, sieve_dovecot: Dovecot, sink: SmtpSink
) -> None:
    user = client.user
    created = client.call("Mailbox/set", {"create": {"r": {"name": "Reports"}}})["created"]
    reports = created["r"]["id"]
    use_rules(direct)
    assert update(client, AWAY)["updated"] == {"singleton": None}
    already = len(sink.arrivals)

    address = f"{user}@bridge.test"
    message = (
        f"From: Carol <carol@example.org>\r\nTo: {address}\r\n"
        "Subject: monthly report\r\nMessage-ID: <report-1@example.org>\r\n\r\nNumbers.\r\n"
    ).encode()
    sieve_dovecot.deliver(user, message, "carol@example.org", address)

    # The user's rule still ran: the message is in Reports, not in the Inbox.
    found = client.call("Email/query", {"filter": {"inMailbox": reports}})
    assert len(found["ids"]) == 1
    # And the reply went out, to the sender, as RFC 3834 wants it.
    [reply] = sink.wait_for(already + 1)[already:]
    assert reply.rcpt_to == ["carol@example.org"]
    parsed = email.message_from_bytes(reply.message, policy=email.policy.default)
    assert parsed["Subject"] == AWAY["subject"]
    assert parsed["In-Reply-To"] == "<report-1@example.org>"
    assert parsed["Auto-Submitted"].startswith("auto-replied")
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n") == "I am away.\nBack in May.\n"
    assert html is not None and "<b>away</b>" in html.get_content()

    # Not yet started: no reply (fromDate holds on the server, at delivery).
    update(client, {"fromDate": "2099-01-01T00:00:00Z"})
    sieve_dovecot.deliver(user, message.replace(b"report-1", b"report-3"), "erin@example.org",
                          address)  # fmt: skip
    assert len(client.call("Email/query", {"filter": {"inMailbox": reports}})["ids"]) == 2
    assert len(sink.wait_for(already + 2, timeout=0.5)) == already + 1

    # Off: the next message is sorted the same, and nobody is answered.
    update(client, {"isEnabled": False})
    sieve_dovecot.deliver(user, message.replace(b"report-1", b"report-2"), "dave@example.org",
                          address)  # fmt: skip
    assert len(client.call("Email/query", {"filter": {"inMailbox": reports}})["ids"]) == 3
    assert len(sink.wait_for(already + 2, timeout=0.5)) == already + 1
