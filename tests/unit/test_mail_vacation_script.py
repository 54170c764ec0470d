"""Bridge's vacation script: what it says to the Sieve server, and what it reads back."""

from __future__ import annotations

import email
import email.policy

import pytest

from bridge.mail.vacation_script import (
    DEFAULT_TEXT,
    VacationResponse,
    parse_utc_date,
    read,
    render,
)
from bridge.sieve.language import analyse, tokens

AWKWARD = 'line\nbreak "quoted" \\ */ # jmap-vacation-v1 {} \u2028 \x85 é ${hex:41}'


def test_the_object_reads_back_exactly() -> None:
    response = VacationResponse(
        isEnabled=True,
        fromDate="2026-07-01T08:00:00.250Z",
        toDate="2026-07-15T00:00:00Z",
        subject="Away \u2013 «summer»",
        textBody=AWKWARD,
        htmlBody=f"<p>{AWKWARD}</p>",
    )
    stored = read(render(response, 'rules "main"'))
    assert stored is not None
    assert stored.response == response
    assert stored.include == 'rules "main"'


def test_enabled_script() -> None:
    response = VacationResponse(isEnabled=True, subject="Away", textBody="Back on Monday.")
    script = render(response, "mine")
    assert script.endswith(
        'require ["include", "vacation"];\r\n'
        'vacation :days 7 :subject "Away" "Back on Monday.";\r\n'
        "# The rules that were active before, unchanged.\r\n"
        'include :personal :optional "mine";\r\n'
    )
    assert "\n" not in script.replace("\r\n", "")
    facts = analyse(script)
    assert facts.extensions == {"include", "vacation"}
    assert facts.personal_includes == ("mine",)


def test_dates_become_currentdate_tests() -> None:
    response = VacationResponse(
        isEnabled=True, fromDate="2026-07-01T08:00:00.25Z", toDate="2026-07-15T00:00:00Z"
    )
    script = render(response, None)
    assert 'require ["date", "relational", "vacation"];' in script
    assert (
        'if allof (currentdate :zone "+0000" :value "ge" "iso8601" "2026-07-01T08:00:01", '
        'currentdate :zone "+0000" :value "lt" "iso8601" "2026-07-15T00:00:00") {\r\n'
        f'    vacation :days 7 "{DEFAULT_TEXT}";\r\n'
        "}\r\n"
    ) in script
    only_until = render(VacationResponse(isEnabled=True, toDate="2026-07-15T00:00:00Z"), None)
    assert "if allof (currentdate" in only_until and '"ge"' not in only_until
    assert "include" not in analyse(only_until).extensions


def test_html_goes_as_multipart_alternative() -> None:
    response = VacationResponse(isEnabled=True, htmlBody="<p>Out of <b>office</b></p>\n<p>é</p>")
    script = render(response, None)
    found = list(tokens(script))
    mime = found[[t.value for t in found].index(":mime") + 1]
    assert "vacation :days 7 :mime" in script and ":subject" not in script
    part = email.message_from_string(mime.value, policy=email.policy.default)
    assert part.get_content_type() == "multipart/alternative"
    assert "MIME-Version" not in mime.value
    assert mime.value.isascii()  # quoted-printable: a 7-bit reply whatever the text
    plain = part.get_body(("plain",))
    html = part.get_body(("html",))
    assert plain is not None and plain.get_content().split() == ["Out", "of", "office", "é"]
    assert html is not None
    assert html.get_content().replace("\r\n", "\n").strip() == response.htmlBody
    assert render(response, None) == script  # same response, same script


def test_a_disabled_response_is_only_stored() -> None:
    response = VacationResponse(isEnabled=False, subject="Later", textBody="t")
    script = render(response, "mine")
    assert analyse(script).extensions == frozenset()
    assert [t for t in tokens(script)] == []  # comments only: the script does nothing
    stored = read(script)
    assert stored is not None and stored.response == response and stored.include is None


@pytest.mark.parametrize(
    "script",
    [
        "keep;\r\n",
        "# jmap-vacation-v1 {not json\r\n",
        '# jmap-vacation-v1 {"response": {"isEnabled": "yes"}}\r\n',
    ],
)
def test_other_scripts_hold_no_object(script: str) -> None:
    assert read(script) is None


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2026-01-31T12:00:00Z", True),
        ("2026-01-31T12:00:00.123456789Z", True),
        ("2026-01-31T12:00:00+00:00", False),
        ("2026-01-31t12:00:00z", False),
        ("2026-02-30T12:00:00Z", False),
        ("2026-01-31", False),
        (" 2026-01-31T12:00:00Z", False),
    ],
)
def test_utc_dates(value: str, valid: bool) -> None:
    assert (parse_utc_date(value) is not None) is valid


def test_texts_cannot_become_sieve_commands() -> None:
    attack = '"; discard; redirect "x@example.org"; vacation "'
    response = VacationResponse(isEnabled=True, subject=attack, textBody=attack + "\n*/ #")
    script = render(response, 'x"; discard; "')
    commands = [t.value for t in tokens(script) if t.kind == "identifier"]
    assert commands == ["require", "vacation", "include"]
    strings = [t.value for t in tokens(script) if t.kind == "string"]
    assert attack in strings and attack + "\r\n*/ #" in strings
    assert 'x"; discard; "' in strings
