"""Sign-in from the ISP's site: a single-use link from POST /api/sessions."""

import json
import logging
from datetime import datetime, timedelta

import pytest
import requests

from cabinet import contract_sync, handoff, logs
from cabinet.api_tokens import create_token
from cabinet.models import SignInHandoff


@pytest.fixture
def isp_token(demo):
    """An API token of the ISP's site, holding the `sessions` scope."""
    return create_token("isp-site", ["sessions"])[1]


def ask_link(client, token, body):
    """Ask for a sign-in link as the ISP's server does."""
    return client.post(
        "/api/sessions", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def link_path(answer):
    """The path of the link an answer gives (the test client speaks paths)."""
    assert answer.status_code == 201, answer.get_json()
    url = answer.get_json()["url"]
    assert url.startswith("http://cabinet.test/handoff/")
    return url.removeprefix("http://cabinet.test")


def test_a_link_signs_the_subscriber_in_once_and_only_once(app, isp_token):
    path = link_path(
        ask_link(app.test_client(), isp_token, {"contract": "1001", "next": "/pay"})
    )
    browser = app.test_client()
    assert browser.get("/pay").status_code == 302  # not signed in yet
    answer = browser.get(path)
    assert answer.status_code == 302 and answer.headers["Location"] == "/pay"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"
    page = browser.get("/pay")
    assert page.status_code == 200 and "1001" in page.get_data(as_text=True)

    again = app.test_client().get(path)
    assert again.status_code == 410
    assert 'id="handoff-refused"' in again.get_data(as_text=True)
    assert again.headers["Referrer-Policy"] == "no-referrer"
    assert again.headers["Cache-Control"] == "no-store"
    # The first browser stays signed in; the second got nothing.
    assert browser.get("/pay").status_code == 200


def test_the_use_is_recorded_and_only_the_hash_is_kept(app, ctx, isp_token):
    path = link_path(ask_link(app.test_client(), isp_token, {"contract": "1001"}))
    token = path.rsplit("/", 1)[1]
    assert app.test_client().get(path).headers["Location"] == "/"
    row = SignInHandoff.get()
    assert row.token_hash == handoff.hash_token(token) and token not in row.token_hash
    assert row.used_at is not None and row.used_ip == "127.0.0.1"
    assert row.api_token.name == "isp-site" and row.contract.number == "1001"


def test_a_link_lives_handoff_seconds(app, isp_token, monkeypatch):
    app.config["HANDOFF_SECONDS"] = 60
    answer = ask_link(
        app.test_client(), isp_token, {"contract": "1001", "next": "/autopay"}
    )
    expires = datetime.fromisoformat(answer.get_json()["expires_at"].rstrip("Z"))
    assert timedelta(seconds=55) < expires - datetime.utcnow() <= timedelta(seconds=60)
    later = datetime.utcnow() + timedelta(seconds=61)
    monkeypatch.setattr(handoff, "utcnow", lambda: later)
    refused = app.test_client().get(link_path(answer))
    assert refused.status_code == 410
    # Expired, it is not used either: the record says it never signed anyone in.
    with app.app_context():
        assert SignInHandoff.get().used_at is None


def test_an_unknown_token_is_refused_like_a_used_one(client, demo):
    assert client.get("/handoff/not-a-token-we-made").status_code == 410


def test_a_link_of_a_contract_blocked_since_is_refused(app, ctx, isp_token):
    path = link_path(ask_link(app.test_client(), isp_token, {"contract": "1001"}))
    contract_sync.block("1001")
    answer = app.test_client().get(path)
    assert answer.status_code == 403
    assert 'id="handoff-refused"' in answer.get_data(as_text=True)
    assert app.test_client().get(path).status_code == 410  # and it is spent
    refused = ask_link(app.test_client(), isp_token, {"contract": "1001"})
    assert refused.status_code == 409
    assert refused.get_json() == {"error": "the contract is blocked"}


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/pay",
        "//evil.example/pay",
        "/console",
        "/login",
        "/pay#top",
        "/pay/../console",
        "pay",
        "/pay\\x",
        "//[",
        5,
    ],
)
def test_a_next_that_is_not_a_page_of_ours_is_refused(app, ctx, isp_token, next_url):
    answer = ask_link(
        app.test_client(), isp_token, {"contract": "1001", "next": next_url}
    )
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "next"
    assert "/pay" in answer.get_json()["reason"]
    assert SignInHandoff.select().count() == 0


@pytest.mark.parametrize(
    "next_url", ["/", "/pay?amount=500", "/autopay", "/payments?status=success"]
)
def test_next_may_be_any_subscriber_page_with_a_query(app, isp_token, next_url):
    path = link_path(
        ask_link(app.test_client(), isp_token, {"contract": "1001", "next": next_url})
    )
    assert app.test_client().get(path).headers["Location"] == next_url


def test_the_api_wants_a_token_with_the_sessions_scope(app, ctx, demo):
    client = app.test_client()
    assert client.post("/api/sessions", json={"contract": "1001"}).status_code == 401
    autopay_only = create_token("autopay-only", ["autopay"])[1]
    refused = ask_link(client, autopay_only, {"contract": "1001"})
    assert refused.status_code == 403 and "sessions" in refused.get_json()["error"]
    token = create_token("site", ["sessions"])[1]
    assert ask_link(client, token, {"contract": "9999"}).status_code == 404
    missing = ask_link(client, token, {"next": "/pay"})
    assert missing.status_code == 400 and missing.get_json()["field"] == "contract"
    assert SignInHandoff.select().count() == 0


def test_opening_links_is_rate_limited_per_address(make_app, demo):
    app = make_app(HANDOFF_RATE_LIMIT=2)
    client = app.test_client()
    assert client.get("/handoff/guess-1").status_code == 410
    assert client.get("/handoff/guess-2").status_code == 410
    busy = client.get("/handoff/guess-3")
    assert busy.status_code == 429 and int(busy.headers["Retry-After"]) > 0
    other = app.test_client().get(
        "/handoff/guess-4", environ_base={"REMOTE_ADDR": "10.0.0.7"}
    )
    assert other.status_code == 410


def test_the_token_never_reaches_the_log(make_app, demo, isp_token, caplog):
    from cabinet.uniteller.sandbox.testing import serve_in_thread

    app = make_app()
    caplog.set_level(logging.INFO)
    caplog.handler.setFormatter(logs.TextFormatter())
    with serve_in_thread(app) as server:
        answer = requests.post(
            f"{server.url}/api/sessions",
            json={"contract": "1001"},
            headers={"Authorization": f"Bearer {isp_token}"},
            timeout=5,
        )
        token = answer.json()["url"].rsplit("/", 1)[1]
        signed_in = requests.get(f"{server.url}/handoff/{token}", timeout=5)
        assert signed_in.history[0].status_code == 302
        requests.get(f"{server.url}/handoff/{token}", timeout=5)  # refused, 410
    assert "sign-in handoff used" in caplog.text
    assert "sign-in handoff refused: used" in caplog.text
    assert "/handoff/*** HTTP/1.1" in caplog.text  # werkzeug's access lines
    assert token not in caplog.text


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_gunicorn_access_lines_keep_no_token(log_format):
    # What gunicorn's access logger hands our formatter (deploy/gunicorn.conf.py).
    record = logging.makeLogRecord(
        {
            "name": "gunicorn.access",
            "levelname": "INFO",
            "msg": '%(h)s "%(m)s %(U)s %(H)s" %(s)s',
            "args": {
                "h": "10.0.0.1",
                "m": "GET",
                "U": "/handoff/abc-DEF_123",
                "H": "HTTP/1.1",
                "s": "302",
            },
        }
    )
    line = logs.formatter(log_format).format(record)
    if log_format == "json":
        line = json.loads(line)["message"]
    assert "abc-DEF_123" not in line and '"GET /handoff/*** HTTP/1.1" 302' in line


def test_two_browsers_racing_with_one_link_get_in_once(app, isp_token):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    path = link_path(ask_link(app.test_client(), isp_token, {"contract": "1001"}))
    start = Barrier(8)

    def open_link(_):
        client = app.test_client()
        start.wait()
        return client.get(path).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(open_link, range(8)))
    assert statuses == [302] + [410] * 7
