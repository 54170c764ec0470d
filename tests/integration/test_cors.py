"""CORS (the ``cors_origins`` setting): what a browser on another origin is let read, for
every route, errors included, as the headers a browser checks."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bridge.cli import _flags, build_parser
from bridge.config import ConfigError, Settings, load_settings
from tests.integration.server import USING, BridgeServer
from tests.integration.upstreams import Upstream

WEBMAIL = "https://mail.example.org"
pytestmark = pytest.mark.upstreams("full")


@pytest.fixture(scope="module")
def listed(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeServer]:
    data = tmp_path_factory.mktemp("cors")
    # A tiny upload storage: an upload answers 413, an error a page must be able to read.
    with BridgeServer(upstream.host, upstream.port, data, cors_origins=[WEBMAIL],
                      max_upload_storage_per_user=10) as server:  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def anyone(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeServer]:
    data = tmp_path_factory.mktemp("cors-any")
    with BridgeServer(upstream.host, upstream.port, data, cors_origins=["*"]) as server:
        yield server


def routes(account_id: str = "a") -> dict[str, str]:
    """Each JMAP route, and the method a page calls it with."""
    return {
        "/.well-known/jmap": "GET",
        "/jmap/session": "GET",
        "/jmap/api": "POST",
        f"/jmap/upload/{account_id}/": "POST",
        f"/jmap/download/{account_id}/Bx/file": "GET",
        "/jmap/eventsource": "GET",
        "/jmap/token": "POST",
        "/jmap/status": "GET",
    }


def preflight(server: BridgeServer, path: str, method: str, origin: str,
              headers: str = "authorization, content-type") -> httpx.Response:  # fmt: skip
    return httpx.options(server.url + path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    })  # fmt: skip


def test_a_listed_origin_is_preflighted_on_every_route(listed: BridgeServer) -> None:
    for path, method in routes().items():
        answer = preflight(listed, path, method, WEBMAIL,
                           "authorization, content-type, last-event-id")  # fmt: skip
        assert answer.status_code == 200, path
        assert answer.headers["access-control-allow-origin"] == WEBMAIL, path
        assert answer.headers["access-control-allow-credentials"] == "true", path
        assert method in answer.headers["access-control-allow-methods"], path
        allowed = answer.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "content-type", "last-event-id"):
            assert header in allowed, (path, header)
        assert "origin" in answer.headers["vary"].lower(), path


def test_another_origin_is_not_let_in(listed: BridgeServer, account: tuple[str, str]) -> None:
    for path, method in routes().items():
        answer = preflight(listed, path, method, "https://evil.example")
        assert "access-control-allow-origin" not in answer.headers, path
    # An answer to a request the browser sends without a preflight is not let through.
    session = httpx.get(listed.url + "/jmap/session", auth=account,
                        headers={"Origin": "https://evil.example"})  # fmt: skip
    assert session.status_code == 200
    assert "access-control-allow-origin" not in session.headers
    assert "origin" in session.headers["vary"].lower()


def test_a_listed_origin_reads_answers_and_errors(
    listed: BridgeServer, account: tuple[str, str]
) -> None:
    page = httpx.Client(base_url=listed.url, headers={"Origin": WEBMAIL}, timeout=30)
    session = page.get("/jmap/session", auth=account)
    assert session.status_code == 200
    api = page.post("/jmap/api", auth=account, json={"using": USING, "methodCalls": []})
    assert api.status_code == 200
    account_id = session.json()["primaryAccounts"]["urn:ietf:params:jmap:mail"]
    answers = {
        "401": page.get("/jmap/session"),
        "400 notJSON": page.post("/jmap/api", auth=account, content=b"{}",
                                 headers={"Content-Type": "text/plain"}),
        "413": page.post(f"/jmap/upload/{account_id}/", auth=account, content=b"x" * 100),
        "404": page.get(f"/jmap/download/{account_id}/Bnothing/file", auth=account),
        "redirect": page.get("/.well-known/jmap"),
        "session": session,
        "api": api,
    }  # fmt: skip
    assert [answers[k].status_code for k in ("401", "400 notJSON", "413", "404")] == [
        401, 400, 413, 404]  # fmt: skip
    for name, answer in answers.items():
        assert answer.headers["access-control-allow-origin"] == WEBMAIL, name
        assert answer.headers["access-control-allow-credentials"] == "true", name
        exposed = answer.headers["access-control-expose-headers"].lower()
        for header in ("www-authenticate", "retry-after", "content-disposition", "location"):
            assert header in exposed, (name, header)
        assert "origin" in answer.headers["vary"].lower(), name
    page.close()


def test_any_origin_gets_star_and_no_credentials(
    anyone: BridgeServer, account: tuple[str, str]
) -> None:
    for path, method in routes().items():
        answer = preflight(anyone, path, method, "https://anywhere.example")
        assert answer.status_code == 200, path
        assert answer.headers["access-control-allow-origin"] == "*", path
        # Authorization is named: "*" in Allow-Headers would not cover it.
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in answer.headers, path
    headers = {"Origin": "https://anywhere.example"}
    for answer in (httpx.get(anyone.url + "/jmap/session", auth=account, headers=headers),
                   httpx.get(anyone.url + "/jmap/session", headers=headers)):  # fmt: skip
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in answer.headers


def test_a_listed_origin_opens_the_websocket_with_what_the_browser_sends(
    listed: BridgeServer, anyone: BridgeServer, account: tuple[str, str]
) -> None:
    """A WebSocket upgrade is no CORS request: bridge checks its Origin itself, and trusts
    a listed origin as its own (never "*": any page could ride on the user's login)."""
    basic = "Basic " + base64.b64encode(":".join(account).encode()).decode()
    for server, origin, allowed in ((listed, WEBMAIL, True), (listed, "https://evil.example",
                                    False), (anyone, "https://evil.example", False)):  # fmt: skip
        url = server.url.replace("http", "ws", 1) + "/jmap/ws"
        headers = {"Authorization": basic, "Origin": origin}
        if allowed:
            with connect(url, subprotocols=["jmap"], additional_headers=headers) as ws:
                assert ws.subprotocol == "jmap"
            continue
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(url, subprotocols=["jmap"], additional_headers=headers, open_timeout=5),
        ):
            pass
        assert refused.value.response.status_code == 403


def test_without_the_setting_browsers_keep_their_same_origin_rule(
    bridge: BridgeServer,
) -> None:
    answer = preflight(bridge, "/jmap/api", "POST", WEBMAIL)
    assert answer.status_code == 405
    assert not [h for h in answer.headers if h.startswith("access-control-")]
    plain = httpx.get(bridge.url + "/jmap/session", headers={"Origin": WEBMAIL})
    assert not [h for h in plain.headers if h.startswith("access-control-")]


def test_cors_origins_are_origins(tmp_path: Path) -> None:
    def settings(*origins: str) -> Settings:
        return Settings(data_dir=str(tmp_path), cors_origins=list(origins)).validate()

    assert settings("https://a.example", "http://b.example:8080").cors_origins
    assert settings("*").cors_origins == ["*"]
    for bad in (("*", "https://a.example"), ("https://a.example/",), ("a.example",),
                ("https://a.example/webmail",), ("ftp://a.example",)):  # fmt: skip
        with pytest.raises(ConfigError):
            settings(*bad)
    environ = {"BRIDGE_CORS_ORIGINS": "https://a.example, https://b.example"}
    loaded = load_settings(environ=environ)
    assert loaded.cors_origins == ["https://a.example", "https://b.example"]
    flags = build_parser().parse_args(
        ["serve", "--cors-origin", "https://a.example", "--cors-origin", "https://b.example",
         "--strict-using", "--data-dir", str(tmp_path)])  # fmt: skip
    from_flags = load_settings(_flags(flags), environ={})
    assert from_flags.cors_origins == loaded.cors_origins and from_flags.lenient_using is False
    assert load_settings({}, environ={}).lenient_using is True
