"""The console's guard on every URL, its audit of every change, configurations."""

import io
import json

import pytest
from flask import url_for

from cabinet import accounts, acquirer, configurations, params
from cabinet.models import (
    AuditEntry,
    ConfigurationVersion,
    ModuleConfiguration,
    Transaction,
)
from tests.helpers import (
    ADMIN,
    NEW_CONFIG,
    _form,
    bind_autopay,
    console_login,
    in_app,
    isp_today,
    new_payment,
    pay_by_card,
    signed_callback,
)
from tests.helpers import login as subscriber_login

# Values for the URL arguments of console routes; a new argument needs one here.
SAMPLE_ARGUMENTS = {
    "number": "1001",
    "order_id": "P1001-none",
    "code": "isp",
    "config_id": 1,
    "name": "status-check",
    "slot": "manual:x",
    "run_id": 1,
    "delivery_id": 1,
}
PUBLIC = {"console.login", "console.logout"}


@pytest.fixture
def seeded(app, shop):
    """The demo's data and an admin, made outside the test's own app context.

    Each client's requests then get an app context (and a logged-in user) of
    their own: clients of different people can take turns in one test.
    """
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
        accounts.add_contract("1001", "Иванов И. И.", "demo-pass", None, instance)
        accounts.add_operator(*ADMIN, admin=True)
    return app


def console_requests(app):
    """List (method, path) of every console route and method but login and logout."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint in PUBLIC:
            continue
        values = {
            name: SAMPLE_ARGUMENTS[name]
            for name in rule.arguments
            if name not in (rule.defaults or {})
        }
        _, path = rule.build({**values, **(rule.defaults or {})})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    return found


def test_every_console_url_refuses_anonymous_visitors_and_subscribers(seeded):
    app = seeded
    requests = console_requests(app)
    assert ("GET", "/console/monitor") in requests
    assert ("POST", "/console/instances/isp/configs/1/activate") in requests
    anonymous, subscriber = app.test_client(), app.test_client()
    subscriber_login(subscriber)
    for method, path in requests:
        answer = anonymous.open(path, method=method, data={"instance": ""})
        assert answer.status_code == 302, (method, path)
        assert answer.headers["Location"].startswith("/console/login?next="), path
        answer = subscriber.open(path, method=method, data={"instance": ""})
        assert answer.status_code == 403, (method, path)
        assert "Иванов" not in answer.get_data(as_text=True), path
    with in_app(app):
        assert AuditEntry.select().count() == 0
        assert accounts.get_contract("1001").instance_id is not None


# -- every change writes one audit row ---------------------------------------------


def _setup_second(world):
    """Add a second configuration, active, so the first is the one to roll back to."""
    instance = configurations.get_instance("isp")
    configurations.add_configuration(
        instance,
        "reserve",
        ["shop_id=00000002", "login=2", "password=reserve-secret"],
        activate=True,
    )


def _paid_order(world):
    order_id, _, _ = pay_by_card(world, "500")
    world.settle()
    return order_id


def _flagged_order(world):
    """A paid order flagged for review: on the attention list."""
    from cabinet import payments
    from cabinet.models import Transaction

    order_id = _paid_order(world)
    payments.flag_for_review(Transaction.by_order_id(order_id), "status", "test")
    return order_id


def _failed_delivery(world):
    """A credit whose delivery to the billing was refused: on the attention list."""
    from cabinet import billing
    from cabinet.models import BillingDelivery

    billing.add_connector(
        configurations.get_instance("isp"), "books", "osmp", {"url": "http://b.test"}
    )
    _paid_order(world)
    BillingDelivery.update(state="failed").execute()
    return BillingDelivery.get().id


def _today():
    return isp_today().isoformat()


# The live world's configuration has a top-up policy: forms keep its mode on.
FORM = {**NEW_CONFIG, "autopay_automatic": "y"}
# action: (endpoint, set-up in the live world → request args)
ACTIONS = {
    "contract.link": (
        "console.link_instance",
        lambda w: ("/console/contracts/1001/instance", {"instance": ""}),
    ),
    "transaction.check": (
        "console.check",
        lambda w: (f"/console/transactions/{_paid_order(w)}/check", {}),
    ),
    "transaction.receipt_check": (
        "console.receipt_check",
        lambda w: (f"/console/transactions/{_paid_order(w)}/receipts/check", {}),
    ),
    "transaction.reviewed": (
        "console.reviewed",
        lambda w: (f"/console/transactions/{_flagged_order(w)}/reviewed", {}),
    ),
    "transaction.refund": (
        "console.refund",
        lambda w: (f"/console/transactions/{_paid_order(w)}/refund", {"amount": "100"}),
    ),
    "instance.create": (
        "console.instances",
        lambda w: ("/console/instances", {"code": "second", "name": "Second"}),
    ),
    "configuration.create": (
        "console.configuration_new",
        lambda w: ("/console/instances/isp/configs/new", NEW_CONFIG),
    ),
    "configuration.update": (
        "console.configuration_edit",
        lambda w: ("/console/instances/isp/configs/1", {**FORM, "name": "main"}),
    ),
    "configuration.copy": (
        "console.configuration_copy",
        # The password is copied unseen: the gateway stays the source's.
        lambda w: (
            "/console/instances/isp/configs/1/copy",
            {**FORM, "password": "", "gateway_url": w.sandbox_url},
        ),
    ),
    "configuration.activate": (
        "console.configuration_activate",
        lambda w: (_setup_second(w), ("/console/instances/isp/configs/1/activate", {}))[
            1
        ],
    ),
    "configuration.rollback": (
        "console.configuration_rollback",
        lambda w: (_setup_second(w), ("/console/instances/isp/configs/rollback", {}))[
            1
        ],
    ),
    "configuration.test": (
        "console.configuration_test",
        lambda w: ("/console/instances/isp/configs/1/test", {}),
    ),
    "task.run": ("console.task_run", lambda w: ("/console/tasks/status-check/run", {})),
    "reconcile.fix": (
        "console.reconcile_page",
        lambda w: (
            "/console/reconcile",
            {"instance": "isp", "from": _today(), "to": _today(), "fix": "1"},
        ),
    ),
    "autopay.charge": (
        "console.autopay_charge",
        lambda w: (
            bind_autopay(w, "automatic", "300"),
            (
                "/console/contracts/1001/autopay/charge",
                {"amount": "150", "reason": "asked by phone"},
            ),
        )[1],
    ),
    "billing_connector.create": (
        "console.billing_connectors",
        lambda w: (
            "/console/instances/isp/billing",
            {"name": "books", "kind": "osmp", "url": "https://billing.test/osmp"},
        ),
    ),
    "billing_delivery.retry": (
        "console.billing_retry",
        lambda w: (f"/console/billing/deliveries/{_failed_delivery(w)}/retry", {}),
    ),
    "billing_delivery.done": (
        "console.billing_done",
        lambda w: (
            f"/console/billing/deliveries/{_failed_delivery(w)}/done",
            {"comment": "entered by hand"},
        ),
    ),
    "billing_delivery.readdress": (
        "console.billing_readdress",
        lambda w: (
            f"/console/billing/deliveries/{_failed_delivery(w)}/readdress",
            {"account": "1001-1"},
        ),
    ),
    "contract.import": (
        "console.contract_import_page",
        lambda w: (
            "/console/contract-import",
            {"file": (io.BytesIO("number,name\n3001,Новый\n".encode()), "c.csv")},
        ),
    ),
    "autopay.off": (
        "console.autopay_off",
        lambda w: (
            bind_autopay(w, "weekly", "300"),
            ("/console/contracts/1001/autopay/off", {}),
        )[1],
    ),
}


def test_every_changing_console_route_is_in_the_audit_test(app):
    changing = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.") and "POST" in rule.methods
    }
    assert changing - PUBLIC == {endpoint for endpoint, _ in ACTIONS.values()}


# The connection test's and the import's results are on the page they answer.
ANSWERED_WITH_A_PAGE = {"configuration.test", "contract.import"}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_each_change_writes_exactly_one_audit_row(autopay_world, action):
    world = autopay_world
    with in_app(world):
        accounts.add_operator(*ADMIN, admin=True)
        path, data = ACTIONS[action][1](world)
        before = AuditEntry.select().count()
    client = world.app.test_client()
    console_login(client)
    answer = client.post(path, data=data)
    # A change redirects to what it changed; two answer with a page of results.
    expected = 200 if action in ANSWERED_WITH_A_PAGE else 302
    assert answer.status_code == expected, answer.get_data(as_text=True)[-2000:]
    with in_app(world):
        rows = list(AuditEntry.select().order_by(AuditEntry.id))[before:]
        assert [(row.action, row.login) for row in rows] == [(action, "admin")]
        assert "secret" not in json.dumps([rows[0].before, rows[0].after])


# -- configurations ---------------------------------------------------------------


def pay_form_fields(client, amount="500"):
    """Ask for a payment as the subscriber; return the hidden fields of the form."""
    return _form(client.post("/pay", data={"amount": amount}).get_data(as_text=True))[1]


def test_activation_switches_new_payments_while_old_ones_keep_their_configuration(
    seeded, shop
):
    app = seeded
    with in_app(app):
        older = new_payment(accounts.get_contract("1001"), 30000)
    admin = app.test_client()
    console_login(admin)
    admin.post(
        "/console/instances/isp/configs/new",
        data={**NEW_CONFIG, "shop_id": "00000002", "password": "reserve-password"},
    )
    with in_app(app):
        reserve = ModuleConfiguration.get(ModuleConfiguration.name == "reserve")
    subscriber = app.test_client()
    subscriber_login(subscriber)
    assert pay_form_fields(subscriber)["Shop_IDP"] == shop["shop_id"]

    assert (
        admin.post(f"/console/instances/isp/configs/{reserve.id}/activate").status_code
        == 302
    )
    assert pay_form_fields(subscriber)["Shop_IDP"] == "00000002"
    with in_app(app):
        newest = Transaction.select().order_by(Transaction.id.desc()).first()
        assert newest.configuration_id == reserve.id
        assert Transaction.get_by_id(older.id).configuration.name == "main"
    # The older order's callback is signed with main's password: still accepted;
    # signed with the active configuration's, it is refused.
    refused = signed_callback(older.order_id, "paid", "reserve-password", "300.00")
    assert subscriber.post("/uniteller/isp/notify", data=refused).status_code == 403
    accepted = signed_callback(older.order_id, "paid", shop["password"], "300.00")
    assert subscriber.post("/uniteller/isp/notify", data=accepted).status_code == 200
    with in_app(app):
        assert Transaction.get_by_id(older.id).status == "paid"


def test_admin_adds_tests_activates_and_rolls_back_a_configuration(world):
    """The issue's "done when" for admins, as one story, every step recorded."""
    client = world.app.test_client()
    with in_app(world):
        accounts.add_operator(*ADMIN, admin=True)
        main = ModuleConfiguration.get(ModuleConfiguration.name == "main")
        gateway = main.params["gateway_url"]
    console_login(client)
    # Add a second configuration as a copy of the first: the password comes along.
    copy_page = client.get(f"/console/instances/isp/configs/{main.id}/copy")
    assert "shop-secret-password" not in copy_page.get_data(as_text=True)
    answer = client.post(
        f"/console/instances/isp/configs/{main.id}/copy",
        data={
            "name": "second",
            "shop_id": "00000001",
            "login": "1001",
            "password": "",
            "gateway_url": gateway,
            "lifetime": "600",
        },
    )
    assert answer.status_code == 302
    with in_app(world):
        second = ModuleConfiguration.get(ModuleConfiguration.name == "second")
        assert second.params["password"] == main.params["password"]
        assert not second.is_active
    # Test it, activate it, roll back.
    tested = client.post(f"/console/instances/isp/configs/{second.id}/test")
    assert "Соединение в порядке" in tested.get_data(as_text=True)
    # Activation shows what changes and asks first.
    asked = client.get(f"/console/instances/isp/configs/{second.id}/activate")
    asked = asked.get_data(as_text=True)
    assert 'id="confirm-activation"' in asked and 'id="diff"' in asked
    client.post(f"/console/instances/isp/configs/{second.id}/activate")
    page = client.get("/console/instances/isp/configs").get_data(as_text=True)
    assert 'id="rollback-form"' in page and "Откатить на main" in page
    client.post("/console/instances/isp/configs/rollback")
    with in_app(world):
        assert configurations.get_instance("isp").active_configuration().name == "main"
        actions = [
            (e.action, e.object_id, e.after.get("active"))
            for e in AuditEntry.select().order_by(AuditEntry.id)
        ]
        assert actions == [
            ("configuration.copy", "isp/second", None),
            ("configuration.test", "isp/second", None),
            ("configuration.activate", "isp", "second"),
            ("configuration.rollback", "isp", "main"),
        ]
        history = [
            (v.configuration.name, v.number, v.action, v.who)
            for v in ConfigurationVersion.select().order_by(ConfigurationVersion.id)
        ]
    assert history == [
        ("main", 1, "create", "cli"),
        ("main", 2, "activate", "cli"),
        ("second", 1, "copy", "admin"),
        ("second", 2, "activate", "admin"),
        ("main", 3, "rollback", "admin"),
    ]
    # Rolling back again returns to the second: the one active before main.
    client.post("/console/instances/isp/configs/rollback")
    with in_app(world):
        assert (
            configurations.get_instance("isp").active_configuration().name == "second"
        )


def test_versions_and_their_diff_show_a_password_change_but_never_the_password(
    client, staff, shop
):
    console_login(client)
    main = staff["instance"].active_configuration()
    form = {
        **NEW_CONFIG,
        "name": "main",
        "shop_id": shop["shop_id"],
        "password": "",
        "max_amount": "900.00",
    }
    client.post(f"/console/instances/isp/configs/{main.id}", data=form)
    client.post(
        f"/console/instances/isp/configs/{main.id}",
        data={**form, "password": "brand-new-secret"},
    )
    versions = list(
        ConfigurationVersion.select()
        .where(ConfigurationVersion.configuration == main)
        .order_by(ConfigurationVersion.number)
    )
    assert [(v.number, v.action) for v in versions] == [
        (1, "create"),
        (2, "activate"),
        (3, "edit"),
        (4, "edit"),
    ]
    assert versions[3].params["password"] == params.fingerprint("brand-new-secret")
    stored = json.dumps([v.params for v in versions])
    assert shop["password"] not in stored and "brand-new-secret" not in stored
    listing = client.get(f"/console/instances/isp/configs/{main.id}/versions")
    assert "История версий" in listing.get_data(as_text=True)
    changed = client.get(f"/console/instances/isp/configs/{main.id}/diff?from=2&to=3")
    text = changed.get_data(as_text=True)
    assert "900.00" in text and "15000.00" in text and "Пароль" not in text
    secret = client.get(f"/console/instances/isp/configs/{main.id}/diff?from=3&to=4")
    text = secret.get_data(as_text=True)
    assert "изменён" in text and "sha256" not in text
    assert "brand-new-secret" not in text and "900.00" not in text
    assert (
        client.get(
            f"/console/instances/isp/configs/{main.id}/diff?from=x&to=4"
        ).status_code
        == 400
    )


def test_configuration_form_validates_with_clear_russian_messages(client, staff):  # noqa: F811
    console_login(client)
    for field, value, message in [
        ("gateway_url", "http://wpay.uniteller.ru", "нужен https"),
        ("shop_id", "shop #1", "только латинские буквы"),
        ("auto_threshold", "100", "и порог (auto_threshold), и цель"),
    ]:
        answer = client.post(
            "/console/instances/isp/configs/new", data={**NEW_CONFIG, field: value}
        )
        assert answer.status_code == 400, field
        assert message in answer.get_data(as_text=True), field
    policy = {**NEW_CONFIG, "auto_threshold": "100", "auto_target": "500"}
    answer = client.post("/console/instances/isp/configs/new", data=policy)
    assert "требует автоматического режима" in answer.get_data(as_text=True)
    answer = client.post(
        "/console/instances/isp/configs/new", data={**policy, "autopay_automatic": "y"}
    )
    assert answer.status_code == 302
    made = ModuleConfiguration.get(ModuleConfiguration.name == "reserve")
    assert made.params["autopay_automatic"] == "yes"
    assert made.params["autopay_weekly"] == "no"
    edit = client.get(f"/console/instances/isp/configs/{made.id}").get_data(
        as_text=True
    )
    assert '<input checked id="autopay_automatic"' in edit
    assert '<input id="autopay_weekly"' in edit


def test_several_instances_ask_which_one_and_old_urls_move(client, staff):  # noqa: F811
    console_login(client)
    # One instance: the monitor and reconciliation need no ?instance=.
    assert 'id="monitor-table"' in client.get("/console/monitor").get_data(as_text=True)
    configurations.add_instance("second", "Second ISP")
    chooser = client.get("/console/monitor?status=paid").get_data(as_text=True)
    assert 'id="choose-instance"' in chooser
    assert "/console/monitor?instance=second&amp;status=paid" in chooser
    assert 'id="choose-instance"' in client.get("/console/reconcile").get_data(
        as_text=True
    )
    assert client.get("/console/monitor.csv").status_code == 400
    page = client.get("/console/monitor?instance=second").get_data(as_text=True)
    assert "Second ISP" in page
    for old, new in [
        ("/console/instances/isp", "/console/instances/isp/configs"),
        (
            "/console/instances/isp/transactions?status=paid",
            "/console/monitor?status=paid&instance=isp",
        ),
        (
            "/console/instances/isp/transactions.csv",
            "/console/monitor.csv?instance=isp",
        ),
        ("/console/instances/isp/reconcile", "/console/reconcile?instance=isp"),
    ]:
        answer = client.get(old)
        assert (answer.status_code, answer.headers["Location"]) == (301, new), old


def test_stable_urls_are_the_issues(app):
    with app.test_request_context():
        built = [
            url_for("console.login"),
            url_for("console.logout"),
            url_for("console.contracts", q="иван"),
            url_for("console.contract", number="1001"),
            url_for("console.transaction", order_id="P1"),
            url_for("console.monitor_page", instance="isp"),
            url_for("console.monitor_csv", instance="isp"),
            url_for("console.instances"),
            url_for("console.instance", code="isp"),
            url_for("console.tasks"),
            url_for("console.reconcile_page"),
            url_for("console.audit_log"),
        ]
    assert [u.split("?")[0] for u in built] == [
        "/console/login",
        "/console/logout",
        "/console/contracts",
        "/console/contracts/1001",
        "/console/transactions/P1",
        "/console/monitor",
        "/console/monitor.csv",
        "/console/instances",
        "/console/instances/isp/configs",
        "/console/tasks",
        "/console/reconcile",
        "/console/audit",
    ]


def test_the_command_line_way_records_versions_too(staff):  # noqa: F811
    """Activation through the service (the CLI's way) records a version too."""
    configurations.add_configuration(
        staff["instance"], "cli-made", ["shop_id=7", "login=7", "password=p"]
    )
    configurations.activate_configuration(staff["instance"], "cli-made")
    made = ModuleConfiguration.get(ModuleConfiguration.name == "cli-made")
    assert [v.action for v in made.versions.order_by(ConfigurationVersion.number)] == [
        "create",
        "activate",
    ]
    assert acquirer.payment_gateway(staff["contract"])[1].name == "cli-made"


def test_a_configuration_that_cannot_take_payments_is_a_draft_never_active(
    staff, client
):
    instance = staff["instance"]
    draft = configurations.add_configuration(instance, "draft", ["shop_id=9"])
    console_login(client)
    page = client.get("/console/instances/isp/configs").get_data(as_text=True)
    assert "Черновик" in page
    assert f"/configs/{draft.id}/activate" not in page  # no button to make it active
    asked = client.get(f"/console/instances/isp/configs/{draft.id}/activate")
    text = asked.get_data(as_text=True)
    assert 'id="cannot-activate"' in text and 'id="confirm-activation"' not in text
    refused = client.post(
        f"/console/instances/isp/configs/{draft.id}/activate", follow_redirects=True
    )
    assert "login, password" in refused.get_data(as_text=True)
    assert instance.active_configuration().name == "main"
    assert (
        not AuditEntry.select()
        .where(AuditEntry.action == "configuration.activate")
        .count()
    )


def test_a_rollback_never_offers_a_configuration_edited_into_a_draft(staff):
    instance = staff["instance"]
    configurations.add_configuration(
        instance, "reserve", ["shop_id=2", "login=2", "password=pw"], activate=True
    )
    main = ModuleConfiguration.get(ModuleConfiguration.name == "main")
    assert configurations.previous_configuration(instance).name == "main"
    # main loses its login: rolling back to it would stop payments.
    ModuleConfiguration.update(params={**main.params, "login": ""}).where(
        ModuleConfiguration.id == main.id
    ).execute()
    assert configurations.previous_configuration(instance) is None
