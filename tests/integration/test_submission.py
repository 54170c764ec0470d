"""Identity and EmailSubmission against a real Dovecot whose SMTP submission service relays
to a sink these tests read: what arrives there is what bridge sent, as the user."""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot, free_port
from bridge.mail.capabilities import SUBMISSION
from tests.integration.server import USING, BridgeServer, JmapClient
from tests.integration.smtp_sink import SmtpSink

SEND_USING = [*USING, SUBMISSION]
# The strict sink asks for a login over plain TCP, which aiosmtpd warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
DOMAIN = "example.test"
USERS = {f"sender{n:02d}@{DOMAIN}": f"secret-{n:02d}" for n in range(1, 16)} | {"plain": "pw"}
ATTACHMENT = bytes(range(256)) * 3


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        server.refuse(senders={f"blocked@{DOMAIN}"}, recipients={"nobody@example.net"})
        yield server


@pytest.fixture(scope="module")
def dovecot(sink: SmtpSink) -> Iterator[Dovecot]:
    with Dovecot(dict(USERS), relay_port=sink.port) as server:
        server.spare = [user for user in USERS if "@" in user]  # type: ignore[attr-defined]
        yield server


# What the operator lets every sender login send as besides its own address.
GRANTED = [f"sales@{DOMAIN}", f"bounces@{DOMAIN}", f"blocked@{DOMAIN}", "*@lists.example"]


@pytest.fixture(scope="module")
def grants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("grants") / "identities"
    path.write_text("".join(f"{login} {' '.join(GRANTED)}\n" for login in USERS))
    return path


@pytest.fixture(scope="module")
def sending_bridge(
    dovecot: Dovecot, grants: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeServer]:
    with BridgeServer(
        dovecot.host, dovecot.port, tmp_path_factory.mktemp("send"),
        submission_port=dovecot.submission_port, submission_tls="plain", mail_domain=DOMAIN,
        allowed_identities=str(grants),
    ) as server:  # fmt: skip
        yield server


@pytest.fixture
def login(dovecot: Dovecot) -> str:
    return dovecot.spare.pop(0)  # type: ignore[attr-defined]


@pytest.fixture
def client(sending_bridge: BridgeServer, login: str) -> Iterator[JmapClient]:
    jmap = sending_bridge.client(login, USERS[login])
    yield jmap
    jmap.close()


@pytest.fixture
def other(dovecot: Dovecot, login: str) -> Iterator[IMAPClient]:
    imap = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
    imap.login(login, USERS[login])
    yield imap
    with contextlib.suppress(Exception):
        imap.logout()


def calls(client: JmapClient, *methods: tuple[str, dict[str, Any]]) -> list[list[Any]]:
    """Several calls with this account in one request: [name, arguments, call id] each."""
    body = [[name, {"accountId": client.account_id, **args}, f"c{i}"]
            for i, (name, args) in enumerate(methods)]  # fmt: skip
    return client.request(body, using=SEND_USING)


def call(client: JmapClient, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    [[name, result, _]] = calls(client, (method, args or {}))
    assert name == method, (name, result)
    return result


def error_of(client: JmapClient, method: str, args: dict[str, Any]) -> str:
    [[name, result, _]] = calls(client, (method, args))
    assert name == "error", result
    return result["type"]


def default_identity(client: JmapClient) -> dict[str, Any]:
    [identity] = [i for i in call(client, "Identity/get")["list"] if not i["mayDelete"]]
    return identity


def draft(sender: str, *, bcc: bool = True) -> bytes:
    encoded = base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n")
    return (
        f"From: Sender <{sender}>\r\n".encode()
        + b"To: Friend <friend@example.net>\r\n"
        + b"Cc: other@example.net, FRIEND@example.net\r\n"
        + (b"Bcc: secret@example.org,\r\n hidden@example.org\r\n" if bcc else b"")
        + b"Subject: Quarterly report\r\n"
        + b"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
        + b"Message-ID: <report@example.test>\r\n"
        + b"MIME-Version: 1.0\r\n"
        + b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        + b"--b1\r\nContent-Type: text/plain\r\n\r\n.a line that starts with a dot\r\nbye\r\n"
        + b"--b1\r\nContent-Type: application/octet-stream\r\n"
        + b"Content-Transfer-Encoding: base64\r\n"
        + b"Content-Disposition: attachment; filename=data.bin\r\n\r\n"
        + encoded
        + b"--b1--\r\n"
    )


def stored_draft(client: JmapClient, other: IMAPClient, raw: bytes) -> str:
    """Put ``raw`` in Drafts behind bridge's back; its Email id."""
    other.append("Drafts", raw, flags=[b"\\Draft"])
    drafts = client.mailboxes()["Drafts"]["id"]
    [email_id] = client.call("Email/query", {"filter": {"inMailbox": drafts}})["ids"]
    return email_id


def test_session_and_default_identity(client: JmapClient, login: str) -> None:
    session = client.session
    assert session["capabilities"][SUBMISSION] == {}
    account = session["accounts"][client.account_id]["accountCapabilities"]
    assert account[SUBMISSION] == {"maxDelayedSend": 0, "submissionExtensions": {}}
    identity = default_identity(client)
    assert identity == {
        "id": identity["id"], "name": "", "email": login, "replyTo": None, "bcc": None,
        "textSignature": "", "htmlSignature": "", "mayDelete": False,
    }  # fmt: skip
    refused = call(client, "Identity/set", {"destroy": [identity["id"]]})
    assert refused["notDestroyed"][identity["id"]]["type"] == "forbidden"
    renamed = call(client, "Identity/set", {"update": {identity["id"]: {
        "name": "Sam Sender", "textSignature": "-- \nSam", "replyTo": [{"email": login}],
    }}})  # fmt: skip
    assert renamed["updated"] == {identity["id"]: None}, renamed
    again = default_identity(client)
    assert again["name"] == "Sam Sender" and again["textSignature"] == "-- \nSam"
    assert again["replyTo"] == [{"name": None, "email": login}]
    # Without submission in "using" the methods run all the same (lenient_using): the
    # webmails that send with using [core, mail] can.
    [[name, _, _]] = client.request([["Identity/get", {"accountId": client.account_id}, "0"]])
    assert name == "Identity/get"


def test_default_identity_of_a_login_that_is_not_an_address(
    sending_bridge: BridgeServer,
) -> None:
    jmap = sending_bridge.client("plain", USERS["plain"])
    try:
        [identity] = call(jmap, "Identity/get")["list"]
        assert identity["email"] == f"plain@{DOMAIN}" and identity["mayDelete"] is False
    finally:
        jmap.close()


def test_identity_create_update_destroy_and_changes(client: JmapClient, login: str) -> None:
    state = call(client, "Identity/get", {"ids": []})["state"]
    created = call(client, "Identity/set", {"create": {
        "alias": {"email": f"sales@{DOMAIN}", "name": "Sales",
                  "bcc": [{"name": "Archive", "email": f"archive@{DOMAIN}"}]},
        "elsewhere": {"email": "me@example.org"},
        "broken": {"email": "not an address"},
        "server-set": {"email": f"x@{DOMAIN}", "mayDelete": False},
    }})  # fmt: skip
    alias = created["created"]["alias"]
    assert alias["mayDelete"] is True and alias["textSignature"] == ""
    assert created["notCreated"]["elsewhere"]["type"] == "forbiddenFrom"
    assert created["notCreated"]["broken"]["properties"] == ["email"]
    assert created["notCreated"]["server-set"]["properties"] == ["mayDelete"]
    got = call(client, "Identity/get", {"ids": [alias["id"], "missing"]})
    [identity] = got["list"]
    assert set(identity) == {"id", "name", "email", "replyTo", "bcc", "textSignature",
                             "htmlSignature", "mayDelete"}  # fmt: skip
    assert identity["bcc"] == [{"name": "Archive", "email": f"archive@{DOMAIN}"}]
    assert got["notFound"] == ["missing"]
    changed = call(client, "Identity/set", {"update": {
        alias["id"]: {"htmlSignature": "<b>Sales</b>"},
    }})  # fmt: skip
    assert changed["updated"] == {alias["id"]: None}
    immutable = call(client, "Identity/set", {"update": {alias["id"]: {"email": login}}})
    assert immutable["notUpdated"][alias["id"]]["properties"] == ["email"]
    changes = call(client, "Identity/changes", {"sinceState": state})
    assert changes["created"] == [alias["id"]] and changes["updated"] == []
    middle = changes["newState"]
    gone = call(client, "Identity/set", {"destroy": [alias["id"]]})
    assert gone["destroyed"] == [alias["id"]]
    later = call(client, "Identity/changes", {"sinceState": middle})
    assert later["destroyed"] == [alias["id"]] and later["created"] == []
    assert error_of(client, "Identity/changes", {"sinceState": "nonsense"}) == (
        "cannotCalculateChanges"
    )


def test_send_draft_then_file_it_in_sent(
    client: JmapClient, other: IMAPClient, sink: SmtpSink, login: str, sending_bridge: BridgeServer
) -> None:
    raw = draft(login)
    email_id = stored_draft(client, other, raw)
    boxes = client.mailboxes()
    drafts, sent_box = boxes["Drafts"]["id"], boxes["Sent"]["id"]
    before = len(sink.arrivals)
    submission_state = call(client, "EmailSubmission/get", {"ids": []})["state"]
    [submitted, filed] = calls(client, ("EmailSubmission/set", {
        "create": {"send": {"identityId": default_identity(client)["id"], "emailId": email_id}},
        "onSuccessUpdateEmail": {"#send": {
            f"mailboxIds/{drafts}": None, f"mailboxIds/{sent_box}": True, "keywords/$draft": None,
        }},
    }))  # fmt: skip
    assert submitted[0] == "EmailSubmission/set" and filed[0] == "Email/set"
    assert submitted[2] == filed[2] == "c0"
    created = submitted[1]["created"]["send"]
    assert created["undoStatus"] == "final" and created["sendAt"].endswith("Z")
    assert created["dsnBlobIds"] == [] and created["mdnBlobIds"] == []
    recipients = ["friend@example.net", "other@example.net", "secret@example.org",
                  "hidden@example.org"]  # fmt: skip
    # The envelope was derived (RFC 8621 §7.5): From, then To, Cc and Bcc, each once.
    assert created["envelope"] == {
        "mailFrom": {"email": login, "parameters": None},
        "rcptTo": [{"email": address, "parameters": None} for address in recipients],
    }
    assert set(created["deliveryStatus"]) == set(recipients)
    for status in created["deliveryStatus"].values():
        assert status["smtpReply"].startswith("250 ") and status["delivered"] == "unknown"
        assert status["displayed"] == "unknown"
    assert filed[1]["updated"] == {email_id: None}, filed

    [arrival] = sink.wait_for(before + 1)[before:]
    assert arrival.mail_from == login and arrival.rcpt_to == recipients
    # Byte for byte, less the Bcc field (both of its lines).
    assert b"Bcc" not in arrival.message and b"secret@" not in arrival.message
    assert arrival.message == raw.replace(b"Bcc: secret@example.org,\r\n hidden@example.org\r\n",
                                          b"")  # fmt: skip
    parsed = email.message_from_bytes(arrival.message, policy=email.policy.default)
    [attachment] = parsed.iter_attachments()
    assert attachment.get_content() == ATTACHMENT

    # Filed upstream: gone from Drafts, in Sent without \Draft.
    other.select_folder("Drafts", readonly=True)
    assert other.search("ALL") == []
    other.select_folder("Sent", readonly=True)
    [data] = other.fetch(other.search("ALL"), ["FLAGS", "ENVELOPE"]).values()
    assert data[b"ENVELOPE"].subject == b"Quarterly report"
    assert b"\\Draft" not in data[b"FLAGS"]

    # The record, and the states push reports.
    got = call(client, "EmailSubmission/get", {"ids": [created["id"]]})
    [record] = got["list"]
    assert record["emailId"] == email_id and record["threadId"] == created["threadId"]
    assert record["identityId"] == default_identity(client)["id"]
    changes = call(client, "EmailSubmission/changes", {"sinceState": submission_state})
    assert changes["created"] == [created["id"]]
    states = sending_bridge.bridge.users.get(login).states()
    assert states["EmailSubmission"] == got["state"]
    assert states["Identity"] == call(client, "Identity/get", {"ids": []})["state"]


def test_create_draft_and_send_in_one_request(
    client: JmapClient, sink: SmtpSink, login: str, other: IMAPClient
) -> None:
    drafts = client.mailboxes()["Drafts"]["id"]
    identity = default_identity(client)
    before = len(sink.arrivals)
    responses = calls(
        client,
        ("Email/set", {"create": {"d": {
            "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
            "from": [{"name": "Me", "email": login}], "to": [{"email": "friend@example.net"}],
            "bcc": [{"email": "quiet@example.org"}], "subject": "Made and sent",
            "bodyValues": {"t": {"value": "Hello there"}},
            "textBody": [{"partId": "t", "type": "text/plain"}],
        }}}),
        ("EmailSubmission/set", {
            "create": {"s": {"identityId": identity["id"], "emailId": "#d"}},
            "onSuccessDestroyEmail": ["#s"],
        }),
    )  # fmt: skip
    [made, submitted, destroyed] = responses
    email_id = made[1]["created"]["d"]["id"]
    assert submitted[1]["created"]["s"]["threadId"] == made[1]["created"]["d"]["threadId"]
    assert destroyed[0] == "Email/set" and destroyed[1]["destroyed"] == [email_id]
    [arrival] = sink.wait_for(before + 1)[before:]
    assert arrival.rcpt_to == ["friend@example.net", "quiet@example.org"]
    assert b"\r\nSubject: Made and sent\r\n" in arrival.message
    assert b"Bcc:" not in arrival.message and b"quiet@" not in arrival.message
    other.select_folder("Drafts", readonly=True)
    assert other.search("ALL") == []


def test_given_envelope_query_changes_cancel_and_destroy(
    client: JmapClient, other: IMAPClient, sink: SmtpSink, login: str
) -> None:
    email_id = stored_draft(client, other, draft(login, bcc=False))
    identity = default_identity(client)["id"]
    start = call(client, "EmailSubmission/query", {})
    assert start["ids"] == [] and start["canCalculateChanges"] is True
    before = len(sink.arrivals)
    envelope = {"mailFrom": {"email": f"bounces@{DOMAIN}"},
                "rcptTo": [{"email": "only@example.net", "parameters": None}]}  # fmt: skip
    result = call(client, "EmailSubmission/set", {"create": {
        "one": {"identityId": identity, "emailId": email_id, "envelope": envelope},
        "two": {"identityId": identity, "emailId": email_id},
    }})  # fmt: skip
    one, two = result["created"]["one"]["id"], result["created"]["two"]["id"]
    # The client's envelope, with the parameters it left out as their default.
    assert result["created"]["one"]["envelope"] == {
        "mailFrom": {"email": f"bounces@{DOMAIN}", "parameters": None},
        "rcptTo": [{"email": "only@example.net", "parameters": None}],
    }
    arrivals = sink.wait_for(before + 2)[before:]
    assert (arrivals[0].mail_from, arrivals[0].rcpt_to) == (f"bounces@{DOMAIN}",
                                                            ["only@example.net"])  # fmt: skip
    assert arrivals[1].rcpt_to == ["friend@example.net", "other@example.net"]

    everything = call(client, "EmailSubmission/query", {"calculateTotal": True})
    assert sorted(everything["ids"]) == sorted([one, two]) and everything["total"] == 2
    thread = call(client, "Email/get", {"ids": [email_id], "properties": ["threadId"]})
    filters: list[tuple[dict[str, Any], list[str]]] = [
        ({"emailIds": [email_id]}, [one, two]),
        ({"identityIds": ["other"]}, []),
        ({"threadIds": [thread["list"][0]["threadId"]], "undoStatus": "final"}, [one, two]),
        ({"undoStatus": "pending"}, []),
        ({"after": "2000-01-01T00:00:00Z", "before": "2999-01-01T00:00:00Z"}, [one, two]),
        ({"before": "2000-01-01T00:00:00Z"}, []),
        ({"operator": "NOT", "conditions": [{"emailIds": [email_id]}]}, []),
    ]
    for condition, expected in filters:
        found = call(client, "EmailSubmission/query", {"filter": condition})["ids"]
        assert sorted(found) == sorted(expected), condition
    by_sent = call(client, "EmailSubmission/query", {
        "sort": [{"property": "sentAt", "isAscending": False}, {"property": "emailId"}],
    })  # fmt: skip
    assert sorted(by_sent["ids"]) == sorted([one, two])
    # RFC 8620 §1.4: a UTCDate is upper case, with seconds, in UTC ("Z").
    for not_utc_date in ("yesterday", "2000-01-01t00:00:00z", "2000-01-01T00:00Z",
                         "2000-01-01T00:00:00+00:00", "2000-01-01 00:00:00Z"):  # fmt: skip
        assert error_of(client, "EmailSubmission/query", {"filter": {"before": not_utc_date}}) == (
            "invalidArguments"
        ), not_utc_date
    assert error_of(client, "EmailSubmission/query", {"filter": {"subject": "x"}}) == (
        "unsupportedFilter"
    )
    assert error_of(client, "EmailSubmission/query", {"sort": [{"property": "size"}]}) == (
        "unsupportedSort"
    )

    cancel = call(client, "EmailSubmission/set", {"update": {
        one: {"undoStatus": "canceled"}, "missing": {"undoStatus": "canceled"},
        two: {"emailId": "other"},
    }})  # fmt: skip
    assert cancel["notUpdated"][one]["type"] == "cannotUnsend"
    assert cancel["notUpdated"]["missing"]["type"] == "notFound"
    assert cancel["notUpdated"][two]["type"] == "invalidProperties"
    removed = call(client, "EmailSubmission/set", {"destroy": [one]})
    assert removed["destroyed"] == [one]
    assert call(client, "EmailSubmission/get", {"ids": [one]})["notFound"] == [one]
    changes = call(client, "EmailSubmission/changes", {"sinceState": start["queryState"]})
    assert changes["created"] == [two] and changes["destroyed"] == []  # one came and went
    since = call(client, "EmailSubmission/queryChanges", {
        "sinceQueryState": start["queryState"], "calculateTotal": True,
    })  # fmt: skip
    assert since["added"] == [{"id": two, "index": 0}] and since["total"] == 1
    # The message was not touched: only the record went.
    assert call(client, "Email/get", {"ids": [email_id], "properties": []})["list"]


def test_a_login_sends_only_as_itself_and_what_it_is_granted(
    client: JmapClient, other: IMAPClient, sink: SmtpSink, login: str, grants: Path
) -> None:
    colleague = f"sender15@{DOMAIN}"
    created = call(client, "Identity/set", {"create": {
        "colleague": {"email": colleague},
        "granted": {"email": f"sales@{DOMAIN}"},
        "list": {"email": "announce@lists.example"},
        "wildcard": {"email": "*@lists.example"},
        "domain": {"email": f"*@{DOMAIN}"},
    }})  # fmt: skip
    assert sorted(created["created"]) == ["granted", "list", "wildcard"]
    assert {k: v["type"] for k, v in created["notCreated"].items()} == {
        "colleague": "forbiddenFrom", "domain": "forbiddenFrom",
    }  # fmt: skip
    identity = default_identity(client)["id"]
    before = len(sink.arrivals)
    own = stored_draft(client, other, draft(login, bcc=False))
    as_colleague = {"mailFrom": {"email": colleague}, "rcptTo": [{"email": "a@example.net"}]}
    refused = call(client, "EmailSubmission/set", {"create": {
        "x": {"identityId": identity, "emailId": own, "envelope": as_colleague},
    }})["notCreated"]["x"]  # fmt: skip
    assert refused["type"] == "forbiddenMailFrom"
    forged = stored_message(
        client, other, f"From: {colleague}\r\nTo: a@example.net\r\n\r\nx\r\n".encode()
    )
    refused = call(client, "EmailSubmission/set", {"create": {
        "y": {"identityId": identity, "emailId": forged},
    }})["notCreated"]["y"]  # fmt: skip
    assert refused["type"] == "forbiddenFrom"
    assert sink.arrivals[before:] == []
    # The operator grants the colleague's address: the file is read again.
    grants.write_text(grants.read_text() + f"{login} {colleague}\n")
    created = call(client, "Identity/set", {"create": {"colleague": {"email": colleague}}})
    assert "colleague" in created["created"], created


def test_send_as_domain_restores_the_domain_rule(
    dovecot: Dovecot, tmp_path: Path, login: str
) -> None:
    with BridgeServer(
        dovecot.host, dovecot.port, tmp_path, submission_port=dovecot.submission_port,
        submission_tls="plain", mail_domain=DOMAIN, send_as_domain=True,
    ) as server:  # fmt: skip
        jmap = server.client(login, USERS[login])
        created = call(jmap, "Identity/set", {"create": {
            "colleague": {"email": f"sender15@{DOMAIN}"}, "elsewhere": {"email": "x@example.org"},
        }})  # fmt: skip
        jmap.close()
    assert list(created["created"]) == ["colleague"]
    assert created["notCreated"]["elsewhere"]["type"] == "forbiddenFrom"


def test_refusals_become_set_errors(
    client: JmapClient, other: IMAPClient, sink: SmtpSink, login: str
) -> None:
    identity = default_identity(client)["id"]
    good = stored_draft(client, other, draft(login, bcc=False))
    before = len(sink.arrivals)

    def create(**submission: Any) -> dict[str, Any]:
        result = call(client, "EmailSubmission/set", {"create": {"x": submission}})
        assert "x" not in (result["created"] or {}), result
        return result["notCreated"]["x"]

    def envelope(sender: str, *recipients: str) -> dict[str, Any]:
        return {"mailFrom": {"email": sender}, "rcptTo": [{"email": r} for r in recipients]}

    def to(sender: str, *recipients: str) -> dict[str, Any]:
        """A submission of the good Email with this envelope."""
        return create(identityId=identity, emailId=good, envelope=envelope(sender, *recipients))

    refused = to(login, "friend@example.net", "nobody@example.net")
    assert refused["type"] == "invalidRecipients"
    assert refused["invalidRecipients"] == ["nobody@example.net"]
    assert "550" in refused["description"]
    assert to(f"blocked@{DOMAIN}", "friend@example.net")["type"] == "forbiddenMailFrom"
    assert to("me@example.org", "a@example.net")["type"] == "forbiddenMailFrom"
    assert to(login)["type"] == "noRecipients"
    too_many = to(login, *[f"r{n}@example.net" for n in range(501)])
    assert too_many["type"] == "tooManyRecipients" and too_many["maxRecipients"] == 500
    bad = to(login, "friend@example.net", "two words@x")
    assert bad["type"] == "invalidRecipients" and bad["invalidRecipients"] == ["two words@x"]
    with_parameters = envelope(login, "friend@example.net")
    with_parameters["mailFrom"]["parameters"] = {"RET": "HDRS"}
    refused = create(identityId=identity, emailId=good, envelope=with_parameters)
    assert refused["properties"] == ["envelope"]
    assert create(identityId="nope", emailId=good)["properties"] == ["identityId"]
    assert create(emailId=good)["properties"] == ["identityId"]
    assert create(identityId=identity, emailId="nope")["properties"] == ["emailId"]
    assert create(identityId=identity, emailId=good, sendAt="now")["properties"] == ["sendAt"]

    no_recipients = stored_message(client, other, b"From: " + login.encode() + b"\r\n\r\nx\r\n")
    assert create(identityId=identity, emailId=no_recipients)["type"] == "noRecipients"
    no_from = stored_message(client, other, b"To: a@example.net\r\n\r\nx\r\n")
    no_from_error = create(identityId=identity, emailId=no_from)
    assert no_from_error["type"] == "invalidEmail" and no_from_error["properties"] == ["from"]
    foreign = stored_message(
        client, other, b"From: boss@example.org\r\nTo: a@example.net\r\n\r\nx\r\n"
    )
    assert create(identityId=identity, emailId=foreign)["type"] == "forbiddenFrom"

    assert sink.arrivals[before:] == []  # nothing reached the server
    assert call(client, "EmailSubmission/query", {})["ids"] == []


def test_malformed_arguments(client: JmapClient) -> None:
    malformed = [
        ("EmailSubmission/set", {"onSuccessUpdateEmail": {"#x": "not a patch"}}),
        ("EmailSubmission/set", {"onSuccessDestroyEmail": "#x"}),
        ("EmailSubmission/set", {"sendLater": True}),
        ("EmailSubmission/get", {"properties": ["sentAt"]}),
        ("Identity/set", {"create": []}),
        ("Identity/get", {"ids": "all"}),
        ("EmailSubmission/queryChanges", {}),
    ]
    for method, args in malformed:
        assert error_of(client, method, args) == "invalidArguments", (method, args)
    assert error_of(client, "EmailSubmission/set", {"ifInState": "old", "destroy": []}) == (
        "stateMismatch"
    )
    assert error_of(client, "Identity/set", {"ifInState": "old"}) == "stateMismatch"


def stored_message(client: JmapClient, other: IMAPClient, raw: bytes) -> str:
    """Put ``raw`` in INBOX behind bridge's back; its Email id."""
    inbox = client.mailboxes()["INBOX"]["id"]
    known = set(client.call("Email/query", {"filter": {"inMailbox": inbox}})["ids"])
    other.append("INBOX", raw)
    [email_id] = set(client.call("Email/query", {"filter": {"inMailbox": inbox}})["ids"]) - known
    return email_id


@pytest.mark.parametrize("problem", ["wrong password", "unreachable"])
def test_submission_server_problems(
    problem: str, dovecot: Dovecot, login: str, other: IMAPClient, tmp_path: Path
) -> None:
    """A server that refuses the login answers forbiddenToSend, one that cannot be reached
    serverFail; neither leaves a record of a send that did not happen."""
    with contextlib.ExitStack() as stack:
        if problem == "wrong password":
            strict = stack.enter_context(SmtpSink(logins={login: "another password"}))
            port = strict.port
        else:
            port = free_port()  # nothing listens there
        server = stack.enter_context(BridgeServer(
            dovecot.host, dovecot.port, tmp_path, submission_port=port, submission_tls="plain"
        ))  # fmt: skip
        jmap = server.client(login, USERS[login])
        stack.callback(jmap.close)
        email_id = stored_draft(jmap, other, draft(login, bcc=False))
        result = call(jmap, "EmailSubmission/set", {"create": {
            "x": {"identityId": default_identity(jmap)["id"], "emailId": email_id},
        }})  # fmt: skip
        error = result["notCreated"]["x"]
        expected = "forbiddenToSend" if problem == "wrong password" else "serverFail"
        assert error["type"] == expected, error
        assert USERS[login] not in error.get("description", "")
        assert call(jmap, "EmailSubmission/query", {})["ids"] == []
        if problem == "wrong password":
            assert strict.handler.logins == [(login, USERS[login])]
            assert strict.arrivals == []
