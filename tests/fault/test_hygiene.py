"""Scenario 114: idempotency keys, caching, file modes, fingerprints, instance codes."""

import hashlib
import json
import os
import re
import stat

import pytest
from peewee import SqliteDatabase

from cabinet import accounts, api_tokens, configurations, create_app, migrations
from cabinet.models import ConfigurationVersion
from tests.fault.tools import snapshot
from tests.helpers import (
    ADMIN,
    OPERATOR,
    bind_autopay,
    console_login,
    in_app,
    login,
    redis_url,
)

pytestmark = pytest.mark.fault


def test_114_a_reused_idempotency_key_with_another_body_is_refused(make_world, figure):
    world = make_world(config=("autopay_automatic=yes",))
    bind_autopay(world, "automatic", "300")
    with in_app(world.app):
        _, token = api_tokens.create_token("billing")
    client = world.app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    body = {"contract": "1001", "amount": "150.00", "reason": "tariff", "key": "k-1"}

    first = client.post("/api/autopay/charge", json=body, headers=auth)
    again = client.post("/api/autopay/charge", json=body, headers=auth)
    with in_app(world.app):
        before = snapshot()
    other_amount = client.post(
        "/api/autopay/charge", json={**body, "amount": "999.00"}, headers=auth
    )
    other_reason = client.post(
        "/api/autopay/charge", json={**body, "reason": "another"}, headers=auth
    )
    with in_app(world.app):
        unchanged = snapshot() == before
    codes = (other_amount.status_code, other_reason.status_code)
    figure(114, "reused key, other body: answers", "/".join(map(str, codes)), "409/409")
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json["charge"] == again.json["charge"]
    assert codes == (409, 409) and unchanged
    assert (
        other_amount.json["error"] == "this key was used for another amount or reason"
    )
    assert other_amount.json["charge"] == first.json["charge"]


def test_114_authenticated_pages_and_exports_are_not_stored(make_world, figure):
    world = make_world()
    with in_app(world.app):
        accounts.add_operator(*ADMIN, admin=True)
    subscriber, admin, anonymous = (world.app.test_client() for _ in range(3))
    login(subscriber)
    console_login(admin, ADMIN)
    urls = [
        (subscriber, "/"),
        (subscriber, "/payments"),
        (subscriber, "/pay"),
        (subscriber, "/autopay"),
        (admin, "/console/contracts/1001"),
        (admin, "/console/monitor"),
        (admin, "/console/monitor.csv"),
        (admin, "/console/audit"),
        (anonymous, "/login"),
    ]
    stored = [
        url
        for client, url in urls
        if client.get(url).headers.get("Cache-Control") != "no-store"
    ]
    figure(114, "pages a cache may keep", len(stored), 0)
    assert stored == []
    static = anonymous.get("/static/css/cabinet.css")
    assert static.status_code == 200 and static.headers.get("Cache-Control") != (
        "no-store"
    )


def test_114_sqlite_files_are_readable_by_their_owner_only(tmp_path, redis, figure):
    from cabinet.uniteller.sandbox.store import Store

    old = os.umask(0o022)  # a usual umask: files would come out 0644
    try:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "k",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'cabinet.sqlite3'}",
                "REDIS_URL": redis_url(redis),
            }
        )
        with in_app(app):
            migrations.create_latest(app.extensions["database"])
        Store(str(tmp_path / "sandbox.sqlite3"))
    finally:
        os.umask(old)
    files = sorted(p for p in tmp_path.iterdir() if ".sqlite3" in p.name)
    open_to_others = [p.name for p in files if stat.S_IMODE(p.stat().st_mode) & 0o077]
    figure(114, "database files others may read", len(open_to_others), 0)
    assert {"cabinet.sqlite3", "sandbox.sqlite3"} <= {p.name for p in files}
    assert open_to_others == []


def test_114_the_history_fingerprints_secrets_with_a_key(make_app, figure):
    app = make_app(SECRET_KEY="fault-suite-session-secret-Hk29")
    login_number = "4821"  # a short login: a plain hash falls to 10,000 tries
    with in_app(app):
        instance = configurations.add_instance("isp", "ISP")
        configurations.add_configuration(
            instance, "main", ["shop_id=1", f"login={login_number}", "password=pw"]
        )
        (version,) = ConfigurationVersion.select()
    fingerprint = version.params["login"]
    plain = {
        "sha256:" + hashlib.sha256(f"{n:04d}".encode()).hexdigest()[:8]
        for n in range(10_000)
    }
    found = fingerprint in plain or any(
        hashlib.sha256(f"{n:04d}".encode()).hexdigest().startswith(fingerprint[5:])
        for n in range(10_000)
    )
    figure(114, "short logins recovered from the history", int(found), 0)
    assert fingerprint.startswith("hmac:") and not found
    with in_app(make_app(SECRET_KEY="another key")):
        from cabinet import params

        assert params.fingerprint(login_number) != fingerprint

    # Fingerprints the old code wrote are hidden by the upgrade, still comparable.
    database = SqliteDatabase(":memory:")
    migrations.upgrade(database, target=max(n for n in migrations.MIGRATIONS if n < 7))
    old = "sha256:" + hashlib.sha256(login_number.encode()).hexdigest()[:8]
    database.execute_sql(
        "INSERT INTO module_instance (code, name, created_at) "
        "VALUES ('isp', 'ISP', '2026-01-01')"
    )
    database.execute_sql(
        "INSERT INTO module_configuration (instance_id, name, params, is_active, "
        "created_by, created_at) VALUES (1, 'main', '{}', 0, 'cli', '2026-01-01')"
    )
    for number in (1, 2):
        database.execute_sql(
            "INSERT INTO configuration_version (configuration_id, number, action, "
            "params, who, created_at) VALUES (1, ?, 'edit', ?, 'cli', '2026-01-01')",
            (number, json.dumps({"login": old, "shop_id": "1"})),
        )
    migrations.upgrade(database)
    rows = [
        json.loads(text)
        for (text,) in database.execute_sql(
            "SELECT params FROM configuration_version ORDER BY number"
        )
    ]
    assert rows[0] == rows[1] and rows[0]["shop_id"] == "1"
    assert rows[0]["login"].startswith("old:") and old not in json.dumps(rows)


def test_114_an_unknown_instance_answers_like_a_known_one(make_world, shop, figure):
    world = make_world()
    with in_app(world.app):
        accounts.add_operator(*OPERATOR)
    client = world.app.test_client()
    fields = {"Order_ID": "P1-x", "Status": "paid", "Signature": "0" * 32}
    known = client.post("/uniteller/isp/notify", data=fields)
    unknown = client.post("/uniteller/nowhere/notify", data=fields)
    asked = {"order_id": "P1-x", "upoint_id": shop["shop_id"]}
    status_known = client.post("/uniteller/isp/status", data=asked)
    status_unknown = client.post("/uniteller/nowhere/status", data=asked)
    operator = world.app.test_client()
    console_login(operator, OPERATOR)
    pages = [
        operator.get(f"/console/instances/{code}/configs") for code in ("isp", "nope")
    ]

    def alike(a, b):
        # Pages carry the session's CSRF token, signed anew each time, and their
        # own path (the language switch comes back to it).
        def body(answer):
            text = re.sub(r"(CSRFToken\": \"|value=\")[\w.-]{40,}", "", answer.text)
            return text.replace("nowhere", "isp").replace("/nope/", "/isp/")

        return (a.status_code, body(a)) == (b.status_code, body(b))

    differing = [
        name
        for name, a, b in (
            ("callback", known, unknown),
            ("status request", status_known, status_unknown),
            ("console (not an admin)", *pages),
        )
        if not alike(a, b)
    ]
    figure(114, "answers telling an instance exists", len(differing), 0)
    assert differing == [] and known.status_code == 403
