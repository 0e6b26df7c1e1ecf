"""The contracts API: the ISP's scripts create, update, read, list, block contracts."""

import json
import threading

import pytest
import requests

from cabinet import contract_sync
from cabinet.db import write_unit
from cabinet.models import Contract
from tests.helpers import api_headers, in_app, login


@pytest.fixture
def api(app, demo):
    """A test client and headers of a token with the contracts scope."""
    return app.test_client(), api_headers(app, "contracts")


NEW = {
    "name": "Сидоров С. С.",
    "email": "sidorov@example.com",
    "phone": "8 (916) 123-45-67",
    "instance": "isp",
    "billing_balance": "-123.45",
    "billing_balance_at": "2026-12-01T10:00:00+03:00",
    "password": "secret-1",
}


def test_put_creates_then_updates_and_get_reads_the_same(api):
    client, headers = api
    created = client.put("/api/contracts/2001", json=NEW, headers=headers)
    assert created.status_code == 201, created.json
    body = created.json
    assert body["number"] == "2001" and body["source"] == "api"
    assert (body["phone"], body["instance"], body["status"]) == (
        "+79161234567",
        "isp",
        "active",
    )
    assert (body["balance"], body["billing_balance"]) == ("0.00", "-123.45")
    assert body["billing_balance_at"] == "2026-12-01T07:00:00.000000Z"
    assert body["has_password"] is True and "password_hash" not in body
    assert body["updated_at"].endswith("Z") and body["created_at"].endswith("Z")

    updated = client.put(
        "/api/contracts/2001",
        json={"billing_balance": 50, "email": None, "status": "blocked"},
        headers=headers,
    )
    assert updated.status_code == 200, updated.json
    assert updated.json["billing_balance"] == "50.00"
    assert (updated.json["email"], updated.json["status"]) == (None, "blocked")
    assert updated.json["name"] == NEW["name"]  # not given: unchanged
    assert updated.json["updated_at"] > body["updated_at"]
    read = client.get("/api/contracts/2001", headers=headers)
    assert read.status_code == 200 and read.json == updated.json


def test_a_contract_without_a_password_cannot_sign_in_with_one(api):
    client, headers = api
    client.put("/api/contracts/2001", json=NEW, headers=headers)
    assert login(client, "2001", "secret-1").status_code == 302
    answer = client.put("/api/contracts/2001", json={"password": None}, headers=headers)
    assert answer.json["has_password"] is False
    assert login(client, "2001", "secret-1").status_code == 401
    assert login(client, "2001", "").status_code != 302


BAD_FIELDS = [
    ({"name": ""}, "name"),
    ({"name": 5}, "name"),
    ({"email": "not-an-address"}, "email"),
    ({"phone": "call me"}, "phone"),
    ({"instance": "nowhere"}, "instance"),
    ({"status": "frozen"}, "status"),
    ({"billing_balance": "1.234"}, "billing_balance"),
    ({"billing_balance": True}, "billing_balance"),
    ({"billing_balance": "1", "billing_balance_at": "yesterday"}, "billing_balance_at"),
    ({"billing_balance_at": "2026-12-01T10:00:00Z"}, "billing_balance_at"),
    ({"password": "abc"}, "password"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_FIELDS)
def test_a_bad_field_is_refused_with_its_name_and_nothing_is_written(
    api, app, fields, field
):
    client, headers = api
    with in_app(app):
        before = Contract.by_number("1001").__data__
    for number, record in (("2001", {"name": "Сидоров", **fields}), ("1001", fields)):
        answer = client.put(f"/api/contracts/{number}", json=record, headers=headers)
        assert answer.status_code == 400, answer.json
        assert answer.json["field"] == field and answer.json["reason"]
        assert answer.json["error"].startswith(f"{field}: ")
    assert client.get("/api/contracts/2001", headers=headers).status_code == 404
    with in_app(app):
        assert Contract.by_number("1001").__data__ == before


def test_a_bad_number_a_body_not_an_object_and_a_large_body_are_refused(api):
    client, headers = api
    answer = client.put("/api/contracts/-2001", json=NEW, headers=headers)
    assert (answer.status_code, answer.json["field"]) == (400, "number")
    for body in ("[1, 2]", '"text"', "{not json", ""):
        answer = client.put(
            "/api/contracts/2001",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert answer.status_code == 400 and answer.json["error"], body
    large = json.dumps({**NEW, "name": "x" * 17000})
    answer = client.put(
        "/api/contracts/2001",
        data=large,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413 and "16384" in answer.json["error"]
    assert client.get("/api/contracts/2001", headers=headers).status_code == 404


def test_an_unknown_contract_is_404(api):
    client, headers = api
    for method in (client.get, client.delete):
        answer = method("/api/contracts/9999", headers=headers)
        assert (answer.status_code, answer.json) == (404, {"error": "unknown contract"})


def test_tokens_need_the_contracts_scope(app, demo):
    client = app.test_client()
    url = "/api/contracts/1001"
    assert client.get(url).status_code == 401
    assert (
        client.get(url, headers={"Authorization": "Bearer cab_nope"}).status_code == 401
    )
    for scopes in (("payments",), ("autopay", "sessions")):
        answer = client.get(url, headers=api_headers(app, *scopes))
        assert answer.status_code == 403 and "contracts" in answer.json["error"]
        answer = client.put(url, json={"name": "X"}, headers=api_headers(app, *scopes))
        assert answer.status_code == 403
    assert client.get(url, headers=api_headers(app, "contracts")).status_code == 200
    with in_app(app):
        assert Contract.by_number("1001").name == "Иванов И. И."


def test_delete_blocks_and_a_blocked_contract_can_no_longer_sign_in(
    app, demo, live_server
):
    headers = api_headers(app, "contracts")
    browser = requests.Session()
    signed_in = browser.post(
        f"{live_server.url}/login",
        data={"number": "1001", "password": "demo-pass"},
        allow_redirects=False,
    )
    assert signed_in.status_code == 302
    answer = requests.delete(
        f"{live_server.url}/api/contracts/1001", headers=headers, timeout=10
    )
    assert answer.status_code == 200 and answer.json()["status"] == "blocked"
    assert answer.json()["name"] == "Иванов И. И."  # blocked, not deleted
    refused = requests.post(
        f"{live_server.url}/login",
        data={"number": "1001", "password": "demo-pass"},
        allow_redirects=False,
        timeout=10,
    )
    assert refused.status_code == 401
    # The session it had ends too.
    page = browser.get(f"{live_server.url}/", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    again = requests.get(
        f"{live_server.url}/api/contracts/1001", headers=headers, timeout=10
    )
    assert again.json()["status"] == "blocked"


def walk(client, headers, limit, **query):
    """Read every page of the list; return the pages' numbers."""
    pages, params = [], {"limit": limit, **query}
    while True:
        answer = client.get("/api/contracts", query_string=params, headers=headers)
        assert answer.status_code == 200, answer.json
        pages.append([item["number"] for item in answer.json["items"]])
        if answer.json["next"] is None:
            return pages
        params["after"] = answer.json["next"]


def test_the_list_pages_by_updated_at_and_a_change_shows_up_again_later(api):
    client, headers = api
    for number in ("3001", "3002", "3003", "3004", "3005"):
        client.put(f"/api/contracts/{number}", json={"name": number}, headers=headers)
    pages = walk(client, headers, 2)
    assert pages == [["1001", "1002"], ["3001", "3002"], ["3003", "3004"], ["3005"]]

    first = client.get("/api/contracts", query_string={"limit": 3}, headers=headers)
    # Changed while the walk is on: 1001 (already read) and 3004 (not yet).
    client.put("/api/contracts/1001", json={"phone": "+79160000000"}, headers=headers)
    client.put("/api/contracts/3004", json={"phone": "+79160000001"}, headers=headers)
    rest = walk(client, headers, 3, after=first.json["next"])
    seen = [i["number"] for i in first.json["items"]] + sum(rest, [])
    assert seen == ["1001", "1002", "3001", "3002", "3003", "3005", "1001", "3004"]

    since = client.get("/api/contracts/3005", headers=headers).json["updated_at"]
    assert walk(client, headers, 100, updated_since=since) == [["3005", "1001", "3004"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "garbage"}, "after"),
        ({"updated_since": "last week"}, "updated_since"),
    ],
)
def test_a_bad_list_parameter_is_400(api, query, field):
    client, headers = api
    answer = client.get("/api/contracts", query_string=query, headers=headers)
    assert (answer.status_code, answer.json["field"]) == (400, field)


def test_a_page_waits_for_a_change_under_way_instead_of_skipping_it(
    api, app, database_url
):
    if not database_url.startswith("postgres"):
        pytest.skip("SQLite commits one writer at a time: a page sees all or none")
    client, headers = api
    written, release, answers = threading.Event(), threading.Event(), []

    def change_slowly():
        # updated_at is taken now; the row commits only later.
        with in_app(app), write_unit():
            contract_sync.upsert("4001", {"name": "Late"}, "api")
            written.set()
            release.wait(20)

    def read_page():
        answers.append(client.get("/api/contracts", headers=headers))

    writer, reader = (
        threading.Thread(target=change_slowly),
        threading.Thread(target=read_page),
    )
    writer.start()
    assert written.wait(20)
    reader.start()
    reader.join(0.5)
    # Without the wait, the page would end at 1002 and its cursor would pass
    # 4001's updated_at before 4001 commits: the next page would skip it.
    assert reader.is_alive() and not answers
    release.set()
    writer.join(20)
    reader.join(20)
    numbers = [item["number"] for item in answers[0].json["items"]]
    assert numbers == ["1001", "1002", "4001"]


def test_errors_under_api_are_json(api):
    client, headers = api
    missing = client.get("/api/nothing-here", headers=headers)
    assert missing.status_code == 404 and missing.is_json and missing.json["error"]
    wrong = client.post("/api/contracts", json={}, headers=headers)
    assert wrong.status_code == 405 and wrong.is_json
    cleared = client.put(
        "/api/contracts/1001", json={"instance": None, "phone": ""}, headers=headers
    )
    assert cleared.status_code == 200
    assert (cleared.json["instance"], cleared.json["phone"]) == (None, None)


def test_rows_of_the_same_updated_at_page_by_id_without_loss(api, app):
    client, headers = api
    for number in ("5001", "5002", "5003", "5004"):
        client.put(f"/api/contracts/{number}", json={"name": number}, headers=headers)
    with in_app(app):  # as an import writing many rows in one moment would
        moment = Contract.get(Contract.number == "5001").updated_at
        Contract.update(updated_at=moment).execute()
    pages = walk(client, headers, 2)
    assert sum(pages, []) == ["1001", "1002", "5001", "5002", "5003", "5004"]
    assert all(len(page) == 2 for page in pages)


def test_the_cabinet_shows_the_balance_the_billing_sent(api, app):
    client, headers = api
    answer = client.put(
        "/api/contracts/1001",
        json={
            "billing_balance": "-75.20",
            "billing_balance_at": "2026-12-02T09:30:00Z",
        },
        headers=headers,
    )
    assert answer.status_code == 200
    subscriber = app.test_client()
    login(subscriber)
    page = subscriber.get("/").get_data(as_text=True)
    assert "-75,20 ₽" in page and "02.12.2026 12:30" in page  # Moscow time
