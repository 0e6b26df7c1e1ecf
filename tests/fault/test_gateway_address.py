"""Scenario 102: the gateway address cannot send the shop's password anywhere."""

import json

import pytest
from flask import Flask

from cabinet import accounts, configurations
from cabinet.models import AuditEntry, ModuleConfiguration
from cabinet.uniteller.sandbox.testing import serve_in_thread
from tests.fault.tools import snapshot
from tests.helpers import NEW_CONFIG, console_login, in_app

pytestmark = pytest.mark.fault

CANARY = "listener-canary-3kq"
# Addresses that point somewhere else than they seem, or carry more than a host.
MISLEADING = [
    # urlparse reads host x.test; requests (urllib3) connects to 169.254.169.254.
    "http://169.254.169.254\\@gateway.test",
    "https://169.254.169.254\\@wpay.uniteller.ru",
    "https://wpay.uniteller.ru@evil.example",
    "https://user:secret@wpay.uniteller.ru",
    "https://wpay.uniteller.ru.evil.example",
    "https://evil.example",
    "https://wpay.uniteller.ru/collect",
    "https://wpay.uniteller.ru/?to=evil",
    "https://wpay.uniteller.ru#x",
    "https://wpay.uniteller.ru:8443",
    "https://wpay.uniteller.ru\t.evil.example",
    "https://wpay.uniteller.ru%2f@evil.example",
]


@pytest.fixture
def listener():
    """Something that is not Uniteller, answering whatever it is sent with a canary."""
    app = Flask("listener")

    @app.route("/results/", methods=["POST"])
    def results():
        return f"hello from the listener {CANARY}"

    server = serve_in_thread(app)
    yield server
    server.shutdown()


@pytest.fixture
def shop_admin(make_app, shop, listener):
    """An admin, an instance and its active configuration on the test gateway."""
    app = make_app(UNITELLER_EXTRA_GATEWAYS=f"http://gateway.test,{listener.url}")
    with in_app(app):
        instance = configurations.add_instance("isp", "Test ISP")
        configurations.add_configuration(
            instance,
            "main",
            [
                f"shop_id={shop['shop_id']}",
                f"login={shop['login']}",
                f"password={shop['password']}",
                "gateway_url=http://gateway.test",
            ],
            activate=True,
        )
        accounts.add_operator("admin", "admin-password", admin=True)
        app.config_id = ModuleConfiguration.get().id
    client = app.test_client()
    console_login(client, ("admin", "admin-password"))
    return app, client


def test_102_the_gateway_is_a_bare_uniteller_origin_and_asks_the_password_again(
    shop_admin, shop, listener, figure
):
    app, client = shop_admin
    edit = f"/console/instances/isp/configs/{app.config_id}"
    with in_app(app):
        before = snapshot()
    accepted = []
    for url in MISLEADING:
        for path, form in (
            ("/console/instances/isp/configs/new", {**NEW_CONFIG, "gateway_url": url}),
            (edit, {**NEW_CONFIG, "name": "main", "gateway_url": url}),
        ):
            answer = client.post(path, data=form)
            if answer.status_code != 400:
                accepted.append((path, url, answer.status_code))
        command = ["config", "add", "isp", "x", "--set", f"gateway_url={url}"]
        if app.test_cli_runner().invoke(args=command).exit_code != 2:
            accepted.append(("cli", url))
    with in_app(app):
        unchanged = snapshot() == before
    figure(102, "misleading gateway addresses accepted", len(accepted), 0)
    assert accepted == [] and unchanged

    # Another gateway, even an allowed one, never receives the saved password.
    moved = {**NEW_CONFIG, "name": "main", "gateway_url": listener.url}
    refused = client.post(edit, data={**moved, "password": "", "login": ""})
    cli_refused = app.test_cli_runner().invoke(
        args=["config", "edit", "isp", "main", "--set", f"gateway_url={listener.url}"]
    )
    with in_app(app):
        kept = ModuleConfiguration.get().params
    figure(102, "gateway changes keeping the saved password", refused.status_code, 400)
    assert refused.status_code == 400 and cli_refused.exit_code == 2
    assert "enter it again" in cli_refused.output
    assert kept["gateway_url"] == "http://gateway.test"
    assert kept["password"] == shop["password"]
    typed = client.post(edit, data={**moved, "password": "typed-again", "login": "77"})
    assert typed.status_code == 302
    with in_app(app):
        assert ModuleConfiguration.get().params["password"] == "typed-again"

    # The connection test shows our own summary, never what the listener said.
    page = client.post(f"{edit}/test").get_data(as_text=True)
    with in_app(app):
        (entry,) = AuditEntry.select().where(AuditEntry.action == "configuration.test")
        audited = json.dumps(entry.after)
    echoed = (CANARY in page) + (CANARY in audited)
    figure(102, "remote answers echoed (page, audit)", echoed, 0)
    assert echoed == 0
    assert "HTTP 200" in page and entry.after["error"] == "not_uniteller"
