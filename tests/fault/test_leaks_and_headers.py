"""Scenarios 19 and 20: no secret in any log or page; security headers and cookies."""

import re

import pytest

from cabinet import accounts, configurations, payments
from cabinet.models import ModuleConfiguration
from tests.fault.tools import SECRET_KEY, SHOP, WATCH, callback, open_orders, post_all
from tests.helpers import SUCCESS_CARD, bind_autopay, in_app, pay_by_card

pytestmark = pytest.mark.fault


@pytest.mark.after_the_suite
def test_19_no_secret_in_any_log_or_page_after_the_suite(make_world, figure):
    """Runs last (conftest): scans what the whole suite fetched and logged, too."""
    world = make_world(config=("autopay_weekly=yes",))
    # A sweep of its own, so the scan means something even when run alone.
    pay_by_card(world, "500", SUCCESS_CARD)
    bind_autopay(world, "weekly", "300", weekday=2)
    order_id = open_orders(world, 1)[0][0]
    leaky = callback(SHOP, order_id, "paid")
    post_all(
        f"{world.url}/uniteller/isp/notify",
        [
            {**leaky, "CardNumber": SUCCESS_CARD, "Password": SHOP["password"]},
            {**leaky, "Signature": "0" * 32, "Login": SHOP["login"]},
        ],
    )
    with in_app(world.app):
        accounts.add_operator("admin", "admin-password", admin=True)
        configurations = list(ModuleConfiguration.select())
    console = world.app.test_client()
    console.post(
        "/console/login", data={"login": "admin", "password": "admin-password"}
    )
    for path in (
        "/console/contracts",
        "/console/contracts/1001",
        f"/console/transactions/{order_id}",
        "/console/instances",
        "/console/instances/isp/configs",
        "/console/orphans",
        "/console/audit",
        "/console/monitor?instance=isp",
        "/console/monitor.csv?instance=isp",
        *(
            f"/console/instances/isp/configs/{c.id}{page}"
            for c in configurations
            for page in ("", "/copy", "/versions")
        ),
    ):
        assert console.get(path, follow_redirects=True).status_code == 200, path
    listing = world.app.test_cli_runner().invoke(args=["config", "show", "isp"])
    WATCH.page("flask config show", listing.output)
    figure(19, "pages and outputs scanned", WATCH.pages)
    figure(19, "log lines scanned", WATCH.log_lines)
    # The API login is a secret too: admins see "set", never the value.
    found = figure(19, "occurrences of secrets", len(WATCH.hits), 0)
    assert WATCH.pages > 20 and WATCH.log_lines > 20
    assert found == 0, WATCH.hits[:5]


PAGES = [
    "/login",
    "/",
    "/pay",
    "/payments",
    "/autopay",
    "/console/login",
    "/console/contracts",
    "/no-such-page",
    "/static/js/autosubmit.js",
]


def _checks(answer, https):
    """Name every protection missing from one answer."""
    missing = []
    csp = answer.headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    script = directives.get("script-src", directives.get("default-src", []))
    if not script or "'unsafe-inline'" in script or "*" in script:
        missing.append("CSP script-src without inline")
    if directives.get("frame-ancestors") != ["'none'"]:
        missing.append("frame-ancestors 'none'")
    if answer.headers.get("X-Frame-Options") != "DENY":
        missing.append("X-Frame-Options")
    if answer.headers.get("X-Content-Type-Options") != "nosniff":
        missing.append("nosniff")
    if not answer.headers.get("Referrer-Policy"):
        missing.append("Referrer-Policy")
    if https and "max-age=" not in answer.headers.get("Strict-Transport-Security", ""):
        missing.append("HSTS")
    page = answer.get_data(as_text=True)
    if answer.mimetype == "text/html":
        inline = [
            s
            for s in re.findall(r"<script\b[^>]*>", page)
            if "src=" not in s and "nonce=" not in s
        ]
        handlers = re.findall(r"\son[a-z]+\s*=", page)
        if inline or handlers:
            missing.append(f"inline script {inline or handlers}")
    return missing


@pytest.mark.parametrize("public_url", ["http://cabinet.test", "https://cabinet.test"])
def test_20_security_headers_and_cookies(make_app, figure, public_url):
    https = public_url.startswith("https")
    app = make_app(PUBLIC_URL=public_url)
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
            ],
            activate=True,
        )
        contract = accounts.add_contract("1001", "Иванов", "demo-pass", None, instance)
        accounts.add_operator("admin", "admin-password", admin=True)
        order_id = payments.start_payment(contract, 50000, "u", "u")[0].order_id
        payments.apply_status(order_id, "paid", source="callback")
    subscriber, operator = app.test_client(), app.test_client()
    base = {"base_url": public_url}
    logged_in = subscriber.post(
        "/login", data={"number": "1001", "password": "demo-pass"}, **base
    )
    operator.post(
        "/console/login", data={"login": "admin", "password": "admin-password"}, **base
    )
    missing = []
    answers = [subscriber.get(p, **base) for p in PAGES]
    answers.append(subscriber.post("/pay", data={"amount": "500"}, **base))
    answers += [
        operator.get(p, **base)
        for p in (
            "/console/contracts/1001",
            f"/console/transactions/{order_id}",
            "/console/instances/isp",
            "/console/orphans",
        )
    ]
    answers.append(
        app.test_client().post("/uniteller/isp/notify", data={"Order_ID": "x"}, **base)
    )
    for answer in answers:
        missing += [(answer.request.path, m) for m in _checks(answer, https)]
    cookie = logged_in.headers.get("Set-Cookie", "")
    for flag in ("HttpOnly", "SameSite=Lax") + (("Secure",) if https else ()):
        if flag not in cookie:
            missing.append(("session cookie", flag))
    count = figure(20, f"missing ({public_url.split(':')[0]})", len(missing), 0)
    assert count == 0, missing
    assert SECRET_KEY not in cookie
