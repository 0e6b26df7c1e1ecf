"""Scenarios 15-18: other people's data, CSRF, open redirects, brute force, sessions."""

import re
import time
from urllib.parse import urljoin, urlsplit

import pytest

from cabinet import accounts, autopay, configurations, payments
from cabinet.models import (
    Autopay,
    Contract,
    ModuleConfiguration,
    Operator,
    Transaction,
)
from tests.fault.tools import snapshot
from tests.helpers import console_login, in_app, login

pytestmark = pytest.mark.fault

HOST = "cabinet.test"


@pytest.fixture
def people(make_app):
    """Two subscribers with orders, an admin, and a second instance."""

    def build(**settings):
        app = make_app(**settings)
        with in_app(app):
            instance = configurations.add_instance("isp", "Test ISP")
            configurations.add_configuration(
                instance,
                "main",
                [
                    "shop_id=00000001",
                    "login=1",
                    "password=p",
                    "gateway_url=http://gateway.test",
                    "autopay_weekly=yes",
                ],
                activate=True,
            )
            owner = accounts.add_contract("1001", "Иванов", "demo-pass", None, instance)
            accounts.add_contract("1002", "Петров", "other-pass", None, instance)
            accounts.add_operator("admin", "admin-password", admin=True)
            app.order_id = payments.start_payment(owner, 50000, "u", "u")[0].order_id
            app.config_id = ModuleConfiguration.select().get().id
        return app

    return build


def console_urls(app):
    """Every console URL, its arguments filled with things that exist."""
    values = {
        "code": "isp",
        "number": "1001",
        "order_id": app.order_id,
        "config_id": app.config_id,
        "name": "status-check",
        "slot": "x",
    }
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint == "console.login":
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = re.sub(
                rf"<(?:[^:>]+:)?{argument}>", str(values.get(argument, 1)), path
            )
        urls.extend((method, path) for method in rule.methods & {"GET", "POST"})
    return sorted(urls)


def test_15_nobody_sees_or_changes_what_is_not_theirs(people, figure):
    app = people()
    owner, stranger, anonymous = (app.test_client() for _ in range(3))
    login(owner)
    login(stranger, "1002", "other-pass")
    order = app.order_id
    subscriber_urls = [
        f"/pay/return/ok?Order_ID={order}",
        f"/pay/return/no?Order_ID={order}",
        f"/pay/status/{order}",
        f"/pay/status/{order}?outcome=ok",
    ]
    leaks = []
    for url in subscriber_urls:
        assert owner.get(url).status_code == 200  # the owner does see it
        answer = stranger.get(url)
        # The 404 page may echo the URL typed; it must tell nothing of the order.
        if answer.status_code != 404 or "500" in answer.get_data(as_text=True):
            leaks.append(("subscriber 1002", url, answer.status_code))
    urls = console_urls(app)
    assert len(urls) >= 15
    with in_app(app):
        before = snapshot()
    for method, url in urls:
        for who, client in (("anonymous", anonymous), ("subscriber", stranger)):
            answer = client.open(
                url, method=method, data={"amount": "1.00", "reason": "x"}
            )
            location = answer.headers.get("Location", "")
            refused = (
                answer.status_code in (401, 403, 404, 405)
                or answer.status_code == 302
                and location.startswith("/console/login")
            )
            if not refused:
                leaks.append((who, method, url, answer.status_code))
    with in_app(app):
        changed = snapshot() != before
    figure(
        15, "URLs tried (subscriber + console)", len(subscriber_urls) + 2 * len(urls)
    )
    count = figure(15, "leaks", len(leaks) + changed, 0)
    assert count == 0, leaks


def csrf_token(client, path):
    page = client.get(path).get_data(as_text=True)
    return re.search(
        r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page
    ).group(1)


FORM = {
    "amount": "500",
    "mode": "weekly",
    "weekday": "2",
    "day_of_month": "1",
    "password": "demo-pass",
    "consent": "y",
    "number": "1001",
    "login": "admin",
    "reason": "x",
    "next": "/",
}


def test_16_state_changing_forms_refuse_missing_and_foreign_tokens_and_get(
    people, figure
):
    app = people(WTF_CSRF_ENABLED=True)
    subscriber, admin, other = (app.test_client() for _ in range(3))
    subscriber.post(
        "/login",
        data={
            "number": "1001",
            "password": "demo-pass",
            "csrf_token": csrf_token(subscriber, "/login"),
        },
    )
    admin.post(
        "/console/login",
        data={
            "login": "admin",
            "password": "admin-password",
            "csrf_token": csrf_token(admin, "/console/login"),
        },
    )
    foreign = csrf_token(other, "/login")
    forms = [(m, u) for m, u in console_urls(app) if m == "POST"]
    forms += [
        ("POST", r.rule)
        for r in app.url_map.iter_rules()
        if r.endpoint.split(".")[0] in ("auth", "subscriber")
        and "POST" in r.methods
        and not r.arguments
    ]
    forms.append(("POST", "/lang/en"))
    changes, tries = [], 0
    for _, url in forms:
        client = admin if url.startswith("/console") else subscriber
        for attempt, data, method in (
            ("no token", FORM, "POST"),
            ("foreign token", {**FORM, "csrf_token": foreign}, "POST"),
            ("GET", FORM, "GET"),
        ):
            with in_app(app):
                before = snapshot()
            if method == "GET":
                answer = client.get(url, query_string=data)
            else:
                answer = client.post(url, data=data)
            tries += 1
            with in_app(app):
                if snapshot() != before:
                    changes.append((attempt, url, answer.status_code))
            if method == "POST" and answer.status_code != 400:
                changes.append((attempt, url, answer.status_code, "not refused"))
    # The same form with the session's own token does change state.
    with in_app(app):
        created = Transaction.select().count()
    subscriber.post(
        "/pay", data={"amount": "500", "csrf_token": csrf_token(subscriber, "/pay")}
    )
    with in_app(app):
        assert Transaction.select().count() == created + 1
    figure(16, "forms x (no token, foreign token, GET)", tries)
    count = figure(16, "state changes", len(changes), 0)
    assert len(forms) >= 10 and count == 0, changes


EVIL = [
    "//evil.example",
    "////evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "https:evil.example",
    "https://evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "/\t/evil.example",
    "/%2F/evil.example",
    "%2F%2Fevil.example",
    " //evil.example",
    "http:/\\evil.example",
    "///evil.example/%2e%2e",
    "//evil.example@cabinet.test",
    "/%09/evil.example",
    "data:text/html,hi",
    "\\\\evil.example",
]


def off_site(location):
    """True if a browser would leave our host following this Location."""
    # Browsers drop tabs and newlines and read a backslash as a slash.
    cleaned = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    target = urlsplit(urljoin(f"http://{HOST}/login", cleaned))
    return target.scheme not in ("http", "https") or target.hostname != HOST


def test_17_redirects_only_lead_to_our_own_paths(people, figure):
    app = people()
    redirects, offsite = 0, []
    for target in EVIL:
        answers = []
        client = app.test_client()
        answers.append(
            client.post(
                "/login",
                query_string={"next": target},
                data={"number": "1001", "password": "demo-pass"},
            )
        )
        client = app.test_client()
        answers.append(
            client.post(
                "/console/login",
                query_string={"next": target},
                data={"login": "admin", "password": "admin-password"},
            )
        )
        answers.append(client.post("/lang/en", data={"next": target}))
        answers.append(
            app.test_client().get("/console/contracts", query_string={"next": target})
        )
        for answer in answers:
            assert answer.status_code == 302
            redirects += 1
            if off_site(answer.headers["Location"]):
                offsite.append((target, answer.headers["Location"]))
    figure(17, "redirects tried", redirects)
    count = figure(17, "off-site redirects", len(offsite), 0)
    assert count == 0, offsite
    assert off_site("//evil.example")  # the check itself can tell


def test_18_brute_force_fixation_and_re_authentication(people, redis, figure):
    app = people(LOGIN_ATTEMPTS=5, LOGIN_LOCKOUT_SECONDS=2)
    results = {}

    def locked_out(path, good, bad):
        client = app.test_client()
        for _ in range(5):
            assert client.post(path, data=bad).status_code == 401
        blocked = client.post(path, data=good).status_code == 429
        time.sleep(2.2)
        let_in = client.post(path, data=good).status_code == 302
        return blocked and let_in

    results["subscriber locked out, then let in"] = locked_out(
        "/login",
        {"number": "1001", "password": "demo-pass"},
        {"number": "1001", "password": "guess"},
    )
    redis.flushdb()
    results["operator locked out, then let in"] = locked_out(
        "/console/login",
        {"login": "admin", "password": "admin-password"},
        {"login": "admin", "password": "guess"},
    )
    redis.flushdb()

    victim, attacker = app.test_client(), app.test_client()
    attacker.post("/lang/en")  # the attacker's own session, planted in the victim
    planted = attacker.get_cookie("session").value
    victim.set_cookie("session", planted)
    login(victim)
    fresh = victim.get_cookie("session").value
    attacker.set_cookie("session", planted)
    results["new session at login"] = (
        fresh != planted
        and attacker.get("/").status_code == 302
        and victim.get("/").status_code == 200
    )

    with in_app(app):
        before = snapshot()
    answers = [
        victim.post(
            "/autopay",
            data={
                "mode": "weekly",
                "weekday": "2",
                "amount": "300",
                "consent": "y",
                "password": password,
            },
        ).status_code
        for password in ("", "wrong")
    ]
    answers.append(
        victim.post(
            "/autopay/card", data={"amount": "300", "password": "wrong"}
        ).status_code
    )
    with in_app(app):
        unchanged = snapshot() == before and Autopay.select().count() == 0
    results["autopay needs the password again"] = unchanged and answers[:2] == [
        400,
        400,
    ]
    with in_app(app):
        assert Contract.select().count() == 2
    for check, passed in results.items():
        figure(18, check, "pass" if passed else "FAIL", "pass")
    assert all(results.values()), results


def test_18_a_session_ends_at_logout_new_password_deactivation_and_idleness(
    people, figure
):
    app = people(SESSION_IDLE_MINUTES=30)
    cli = app.test_cli_runner()
    results = {}

    client = app.test_client()
    login(client)
    stolen = client.get_cookie("session").value
    client.post("/logout")
    replayed = app.test_client()
    replayed.set_cookie("session", stolen)
    results["a cookie replayed after logout is refused"] = (
        replayed.get("/").status_code == 302
    )

    client = app.test_client()
    login(client)
    changed = cli.invoke(
        args=["contract", "password", "1001", "--password", "new-pass"]
    )
    results["a new password ends the old sessions"] = (
        changed.exit_code == 0
        and client.get("/").status_code == 302
        and login(app.test_client(), password="new-pass").status_code == 302
    )

    admin = app.test_client()
    console_login(admin)
    assert admin.get("/console/contracts").status_code == 200
    deactivated = cli.invoke(args=["operator", "deactivate", "admin"])
    with in_app(app):
        before = snapshot()
    unlink = admin.post("/console/contracts/1001/instance", data={"instance": ""})
    with in_app(app):
        unchanged = snapshot() == before
    results["a deactivated operator's session does nothing"] = (
        deactivated.exit_code == 0
        and unchanged
        and unlink.headers.get("Location", "").startswith("/console/login")
        and admin.get("/console/contracts").status_code == 302
        and console_login(app.test_client()).status_code == 401
    )
    cli.invoke(args=["operator", "activate", "admin"])
    results["nor comes back when the operator is let in"] = (
        admin.get("/console/contracts").status_code == 302
        and console_login(app.test_client()).status_code == 302
    )

    def idle_for(minutes):
        client = app.test_client()
        login(client, password="new-pass")
        with client.session_transaction() as session:
            session["seen"] = int(time.time()) - minutes * 60
        return client.get("/").status_code

    results["a session idle past SESSION_IDLE_MINUTES ends"] = idle_for(31) == 302
    results["a session used within it goes on"] = idle_for(29) == 200
    for check, passed in results.items():
        figure(18, check, "pass" if passed else "FAIL", "pass")
    assert all(results.values()), results


def from_address(client, address):
    """Make every request of a test client come from this address."""
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_18_failures_from_one_address_never_lock_the_owner_out(people, figure):
    app = people(LOGIN_ATTEMPTS=5, LOGIN_ACCOUNT_ATTEMPTS=12)
    results = {}
    for who, path, good, bad in (
        (
            "subscriber",
            "/login",
            {"number": "1001", "password": "demo-pass"},
            {"number": "1001", "password": "guess"},
        ),
        (
            "admin",
            "/console/login",
            {"login": "admin", "password": "admin-password"},
            {"login": "admin", "password": "guess"},
        ),
    ):
        attacker = from_address(app.test_client(), "203.0.113.7")
        answers = [attacker.post(path, data=bad).status_code for _ in range(8)]
        # Past the limit the right password waits too: guessing stays bounded.
        answers.append(attacker.post(path, data=good).status_code)
        owner = from_address(app.test_client(), "198.51.100.20")
        results[f"{who}: a guesser waits after 5 failures"] = (
            answers == [401] * 5 + [429] * 4
        )
        results[f"{who}: the owner elsewhere gets in"] = (
            owner.post(path, data=good).status_code == 302
        )

    # Guessing from many addresses: past LOGIN_ACCOUNT_ATTEMPTS failures of the
    # account, each address waits after one failure; a clean address does not.
    bad = {"number": "1002", "password": "guess"}
    good = {"number": "1002", "password": "other-pass"}
    for n in range(12):
        bot = from_address(app.test_client(), f"192.0.2.{n}")
        assert bot.post("/login", data=bad).status_code == 401
    bot = from_address(app.test_client(), "192.0.2.100")
    first, second = (bot.post("/login", data=bad) for _ in range(2))
    results["many addresses: each waits after a failure"] = (
        first.status_code == 401
        and second.status_code == 429
        and "с разных адресов" in second.get_data(as_text=True)
    )
    owner = from_address(app.test_client(), "198.51.100.21")
    results["many addresses: the owner still gets in"] = (
        owner.post("/login", data=good).status_code == 302
    )
    for check, passed in results.items():
        figure(18, check, "pass" if passed else "FAIL", "pass")
    assert all(results.values()), results


def count_password_hashes(monkeypatch):
    """Count password hash computations (werkzeug's scrypt) from now on."""
    import hashlib

    counted = []
    scrypt = hashlib.scrypt

    def counting(*args, **kwargs):
        counted.append(1)
        return scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return counted


def test_18_a_login_costs_one_password_hash_whether_or_not_the_account_exists(
    people, monkeypatch, figure
):
    app = people()
    with in_app(app):
        former = accounts.add_operator("former", "former-password")
        Operator.update(is_active=False).where(Operator.id == former.id).execute()
    counted = count_password_hashes(monkeypatch)
    attempts = {
        "subscriber, wrong password": ("/login", {"number": "1001"}),
        "subscriber, no such contract": ("/login", {"number": "9999"}),
        "operator, wrong password": ("/console/login", {"login": "admin"}),
        "operator, no such login": ("/console/login", {"login": "nobody"}),
        "operator, deactivated": ("/console/login", {"login": "former"}),
    }
    hashes = {}
    for what, (path, data) in attempts.items():
        counted.clear()
        answer = app.test_client().post(path, data={**data, "password": "guess"})
        assert answer.status_code == 401
        hashes[what] = figure(18, f"password hashes: {what}", len(counted), 1)
    assert set(hashes.values()) == {1}, hashes


def test_18_the_autopay_password_is_throttled_like_the_login(people, figure):
    app = people(LOGIN_ATTEMPTS=5)
    with in_app(app):
        autopay.configure(Contract.by_number("1001"), "weekly", 30000, weekday=2)
        before = snapshot()
    subscriber = app.test_client()
    login(subscriber)
    settings = {"mode": "weekly", "weekday": "2", "amount": "300", "consent": "y"}

    def change_settings(password):
        return subscriber.post("/autopay", data={**settings, "password": password})

    def change_card(password):
        return subscriber.post(
            "/autopay/card", data={"amount": "300", "password": password}
        )

    wrong = [change_settings("guess").status_code for _ in range(3)]
    wrong += [change_card("guess").status_code for _ in range(2)]
    right = [change_settings("demo-pass"), change_card("demo-pass")]
    with in_app(app):
        unchanged = snapshot() == before
    results = {
        "wrong autopay passwords count": wrong == [400] * 3 + [302] * 2,
        "after 5 the right one waits too": [a.status_code for a in right] == [429, 429],
        "and changes nothing": unchanged,
        "nor does the login let more guesses in": login(subscriber).status_code == 429,
    }
    for check, passed in results.items():
        figure(18, check, "pass" if passed else "FAIL", "pass")
    assert all(results.values()), results
