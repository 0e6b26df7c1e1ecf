"""The operator console as staff use it: login, roles, contracts, audit, tasks."""

import json
import re

from cabinet import accounts, configurations, payments
from cabinet.models import AuditEntry, Contract, ModuleConfiguration, Transaction
from tests.helpers import (
    ADMIN,
    NEW_CONFIG,
    OPERATOR,
    console_login,
    in_app,
    isp_today,
    new_payment,
    pay_by_card,
)
from tests.helpers import login as subscriber_login


def paid(contract, amount=50000, bill="123456789012"):
    """A card payment Uniteller reported paid (credited, with its bill number)."""
    transaction = new_payment(contract, amount)
    payments.apply_status(
        transaction.order_id,
        "paid",
        source="callback",
        fields={"BillNumber": bill, "ApprovalCode": "AB1234"},
    )
    return Transaction.get_by_id(transaction.id)


def audit_entries(action):
    return list(
        AuditEntry.select().where(AuditEntry.action == action).order_by(AuditEntry.id)
    )


def test_operator_logs_in_and_out(client, staff):
    assert console_login(client, (ADMIN[0], "wrong")).status_code == 401
    response = console_login(client)
    assert response.headers["Location"] == "/console/contracts"
    page = client.get("/console/contracts").get_data(as_text=True)
    assert "Договоры" in page and "Монитор транзакций" in page and "Журнал" in page
    assert client.post("/console/logout").headers["Location"] == "/console/login"
    response = client.get("/console/contracts")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=")


def test_operator_login_is_throttled(make_app, staff):
    client = make_app(LOGIN_ATTEMPTS=2).test_client()
    for _ in range(2):
        assert console_login(client, (ADMIN[0], "wrong")).status_code == 401
    response = console_login(client)  # even the right password waits
    assert response.status_code == 429
    assert "Слишком много неудачных попыток" in response.get_data(as_text=True)


def test_an_operator_made_by_the_cli_can_log_in(app, client, ctx):
    result = app.test_cli_runner().invoke(
        args=["operator", "add", "boss", "--password", "boss-password", "--admin"]
    )
    assert result.exit_code == 0, result.output
    assert console_login(client, ("boss", "boss-password")).status_code == 302
    assert client.get("/console/instances").status_code == 200


def test_anonymous_visitors_are_sent_to_the_console_login(client, staff):
    response = client.get("/console/contracts/1001")
    assert response.headers["Location"].startswith("/console/login")
    htmx = client.get("/console/contracts/1001", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"].startswith("/console/login")


def test_subscribers_and_operators_stay_on_their_own_side(client, staff):
    subscriber_login(client)
    refused = client.get("/console/contracts")
    assert refused.status_code == 403
    assert "только для сотрудников" in refused.get_data(as_text=True)
    client.post("/logout")
    console_login(client, OPERATOR)
    assert client.get("/").status_code == 403  # the cabinet refuses staff


def test_plain_operators_see_but_do_not_administer(client, staff):
    console_login(client, OPERATOR)
    assert client.get("/console/contracts/1001").status_code == 200
    assert client.get("/console/tasks").status_code == 200
    for path in (
        "/console/instances",
        "/console/instances/isp/configs",
        "/console/audit",
        "/console/reconcile?instance=isp",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Только администратор" in response.get_data(as_text=True)
    assert (
        client.post(
            "/console/contracts/1001/instance", data={"instance": ""}
        ).status_code
        == 403
    )
    assert client.post("/console/tasks/status-check/run").status_code == 403
    assert Contract.by_number("1001").instance_id is not None
    assert AuditEntry.select().count() == 0


def test_unknown_things_are_404(client, staff):
    console_login(client)
    for path in (
        "/console/contracts/nope",
        "/console/transactions/nope",
        "/console/monitor?instance=nope",
        "/console/monitor.csv?instance=nope",
        "/console/instances/nope/configs",
        "/console/instances/isp/configs/999",
        "/console/instances/isp/configs/1/diff?from=1&to=99",
        "/console/tasks/nope/runs/x",
    ):
        assert client.get(path).status_code == 404, path


def test_contracts_are_found_by_number_or_name_ignoring_case(make_app, staff):
    client = make_app(PAGE_SIZE=2).test_client()
    accounts.add_contract("2001", "Сидорова А. А.", "pass-2001")
    console_login(client)
    found = client.get("/console/contracts?q=ИВАН").get_data(as_text=True)
    assert "Иванов" in found and "Петров" not in found
    assert "2001" in client.get("/console/contracts?q=00&page=2").get_data(as_text=True)
    fragment = client.get("/console/contracts?q=сидор", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert text.startswith('<div id="contract-list">') and "Сидорова" in text
    assert "HX-Request" in fragment.headers["Vary"]
    assert "100%" not in client.get("/console/contracts?q=%25").get_data(as_text=True)


def test_contract_page_shows_balance_and_filters_its_transactions(client, staff):
    credited = paid(staff["contract"], 70000)
    waiting = new_payment(staff["contract"], 1500)
    theirs = new_payment(staff["other"], 2500)
    console_login(client, OPERATOR)
    page = client.get("/console/contracts/1001").get_data(as_text=True)
    assert "700,00 ₽" in page and 'id="autopay-block"' in page
    assert credited.order_id in page and waiting.order_id in page
    assert theirs.order_id not in page
    only_paid = client.get(
        "/console/contracts/1001?status=success", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert only_paid.startswith('<div id="contract-transactions">')
    assert credited.order_id in only_paid and waiting.order_id not in only_paid
    long_ago = client.get("/console/contracts/1001?from=2001-01-01&to=2001-01-31")
    assert credited.order_id not in long_ago.get_data(as_text=True)
    assert client.get("/console/contracts/1001?status=bogus").status_code == 400
    assert client.get("/console/contracts/1001?from=soon").status_code == 400


def test_admin_links_and_unlinks_a_contract_with_an_audit_entry(client, staff):
    console_login(client)
    response = client.post("/console/contracts/1001/instance", data={"instance": ""})
    assert response.status_code == 302
    assert Contract.by_number("1001").instance_id is None
    client.post("/console/contracts/1001/instance", data={"instance": "isp"})
    assert Contract.by_number("1001").instance_id == staff["instance"].id
    unlink, link = audit_entries("contract.link")
    assert (unlink.before, unlink.after) == ({"instance": "isp"}, {"instance": None})
    assert (link.login, link.object_id, link.after) == (
        "admin",
        "1001",
        {"instance": "isp"},
    )
    bad = client.post("/console/contracts/1001/instance", data={"instance": "nope"})
    assert bad.status_code == 400


def test_transaction_page_shows_its_whole_history_with_raw_fields(client, staff):
    transaction = paid(staff["contract"])
    for note in ("refund #7 of 15000 kopecks asked", "refund #7: Uniteller hung up"):
        step = ("refund", "refund", "paid", "paid")
        payments.record_event(transaction, *step, note=note)
    console_login(client, OPERATOR)
    page = client.get(f"/console/transactions/{transaction.order_id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "123456789012" in text and "AB1234" in text  # raw callback fields
    assert "Оплачен" in text and 'id="refund-form"' in text
    # The history in the reader's words, to the second.
    history = text.split("<h2>История событий</h2>")[1]
    assert "создан" in history and "уведомление Uniteller" in history
    assert "смена статуса" in history and "callback" not in history
    assert "возврат №7 на 150,00 ₽ запрошен" in history
    assert "возврат №7: Uniteller hung up" in history  # a free text stays as it is
    assert re.search(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", history)


def test_the_audit_log_speaks_the_readers_language_and_links_its_objects(client, staff):
    transaction = paid(staff["contract"])
    console_login(client)
    with_words = [
        (
            "transaction.refund",
            "transaction",
            transaction.order_id,
            {"status": "paid", "refundable": 50000},
            {"amount": 12345, "refund_status": "done"},
        ),
        (
            "configuration.update",
            "configuration",
            "isp/main",
            {"params": {"autopay_weekly": "no"}},
            {"params": {"autopay_weekly": "yes"}},
        ),
        ("autopay.charge", "contract", "1001", None, {"amount": "300.00"}),
        ("contract.import", "contract", "upload.csv", None, {"partial": False}),
    ]
    for action, kind, target, before, after in with_words:
        AuditEntry.create(
            login="admin",
            action=action,
            object_type=kind,
            object_id=target,
            before=before,
            after=after,
        )
    page = client.get("/console/audit").get_data(as_text=True)
    table = page.split('id="audit-table"')[1]
    for words in (
        "транзакция: возврат",
        "конфигурация: изменена",
        "автоплатёж: списание вручную",
        "123,45",
        "500,00",
        "можно вернуть, ₽",
        "300,00",
        "Выполнен",
        "Оплачен",
        "<dd>да</dd>",
        "<dd>нет</dd>",
        "Еженедельные платежи",
    ):
        assert words in table, words
    for code in ("transaction.refund", ">yes<", ">no<", "12345", "False"):
        assert code not in table, code
    assert f'href="/console/transactions/{transaction.order_id}"' in table
    assert 'href="/console/instances/isp/configs"' in table
    assert 'href="/console/contracts/1001"' in table
    tasks = client.get("/console/tasks").get_data(as_text=True)
    assert "спрашивает Uniteller о заказах" in tasks


def test_audit_log_is_filterable_and_for_admins(client, staff):
    console_login(client)
    client.post("/console/contracts/1001/instance", data={"instance": ""})
    client.post("/console/contracts/1002/instance", data={"instance": ""})
    page = client.get("/console/audit?action=contract.link").get_data(as_text=True)
    assert "contract.link" in page and "1002" in page
    only = client.get("/console/audit?object_type=task", headers={"HX-Request": "true"})
    assert "1002" not in only.get_data(as_text=True)
    assert "1002" not in client.get(
        "/console/audit?from=2001-01-01&to=2001-01-02"
    ).get_data(as_text=True)


# -- configurations ---------------------------------------------------------------


def test_admin_creates_a_configuration_and_never_sees_its_password(client, staff):
    console_login(client)
    bad = client.post(
        "/console/instances/isp/configs/new", data={**NEW_CONFIG, "lifetime": "soon"}
    )
    assert bad.status_code == 400
    assert "целое число секунд" in bad.get_data(as_text=True)
    response = client.post("/console/instances/isp/configs/new", data=NEW_CONFIG)
    assert response.status_code == 302
    made = ModuleConfiguration.get(ModuleConfiguration.name == "reserve")
    assert made.params["password"] == "very-secret-reserve" and not made.is_active
    assert made.created_by == "admin"
    for path in (
        "/console/instances/isp/configs",
        "/console/audit",
        f"/console/instances/isp/configs/{made.id}",
    ):
        page = client.get(path).get_data(as_text=True)
        assert "very-secret-reserve" not in page, path
    page = client.get("/console/instances/isp/configs").get_data(as_text=True)
    assert "задан" in page
    (entry,) = audit_entries("configuration.create")
    assert entry.after["params"]["password"] == "***"
    taken = client.post("/console/instances/isp/configs/new", data=NEW_CONFIG)
    assert taken.status_code == 400


def test_editing_keeps_the_password_when_left_empty(client, staff, shop):
    console_login(client)
    main = staff["instance"].active_configuration()
    form = {**NEW_CONFIG, "name": "main", "password": "", "max_amount": "500.00"}
    assert (
        client.post(f"/console/instances/isp/configs/{main.id}", data=form).status_code
        == 302
    )
    saved = ModuleConfiguration.get_by_id(main.id)
    assert saved.params["password"] == shop["password"]
    assert saved.params["max_amount"] == "500.00"
    assert saved.params["shop_id"] == "00000002"
    client.post(
        f"/console/instances/isp/configs/{main.id}",
        data={**form, "password": "a-new-one"},
    )
    assert ModuleConfiguration.get_by_id(main.id).params["password"] == "a-new-one"
    kept, changed = audit_entries("configuration.update")
    assert kept.after["password_changed"] is False and changed.after["password_changed"]
    assert shop["password"] not in json.dumps([kept.before, kept.after, changed.before])
    assert "a-new-one" not in json.dumps(changed.after)
    bad = client.post(
        f"/console/instances/isp/configs/{main.id}",
        data={**form, "min_amount": "900", "max_amount": "100"},
    )
    assert bad.status_code == 400 and "min_amount" in bad.get_data(as_text=True)


def test_activating_a_configuration_switches_and_is_audited(client, staff):
    console_login(client)
    client.post("/console/instances/isp/configs/new", data=NEW_CONFIG)
    reserve = ModuleConfiguration.get(ModuleConfiguration.name == "reserve")
    client.post(f"/console/instances/isp/configs/{reserve.id}/activate")
    active = staff["instance"].active_configuration()
    assert active.name == "reserve" and active.activated_by == "admin"
    (entry,) = audit_entries("configuration.activate")
    assert (entry.before, entry.after) == ({"active": "main"}, {"active": "reserve"})


def test_connection_test_against_the_sandbox(world):
    client = world.app.test_client()
    with in_app(world):
        accounts.add_operator(*ADMIN, admin=True)
        main = ModuleConfiguration.get(ModuleConfiguration.name == "main")
        configurations.add_configuration(
            main.instance,
            "wrong",
            [
                "shop_id=00000001",
                "login=1001",
                "password=not-the-password",
                f"gateway_url={main.params['gateway_url']}",
            ],
        )
        wrong = ModuleConfiguration.get(ModuleConfiguration.name == "wrong")
    console_login(client)
    ok = client.post(
        f"/console/instances/isp/configs/{main.id}/test", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert ok.startswith('<div id="connection-test">') and "Соединение в порядке" in ok
    failed = client.post(f"/console/instances/isp/configs/{wrong.id}/test")
    text = failed.get_data(as_text=True)
    assert "Соединение не удалось" in text and "not-the-password" not in text
    with in_app(world):
        good, bad = audit_entries("configuration.test")
        assert good.after["ok"] and not bad.after["ok"] and bad.after["error"]
        assert "not-the-password" not in json.dumps(bad.after)


# -- tasks ------------------------------------------------------------------------


def test_run_now_enqueues_a_manual_run_and_its_progress_polls_until_done(
    app, client, staff, run_jobs
):
    console_login(client)
    page = client.get("/console/tasks").get_data(as_text=True)
    assert "status-check" in page and "*/5 * * * *" in page and "UTC" in page
    started = client.post(
        "/console/tasks/status-check/run", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in started and "В очереди" in started
    progress_url = re.search(r'hx-get="([^"]+)"', started).group(1)
    run_jobs(app)
    finished = client.get(progress_url).get_data(as_text=True)
    assert "every 2s" not in finished and "Готово" in finished
    (entry,) = audit_entries("task.run")
    assert entry.object_id == "status-check" and entry.after["slot"] in progress_url
    assert "manual" in client.get("/console/tasks").get_data(as_text=True)
    without_js = client.post("/console/tasks/status-check/run")
    assert (
        without_js.status_code == 302
        and "slot=manual" in without_js.headers["Location"]
    )


def test_forms_without_csrf_change_nothing(make_app, staff):
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert console_login(client).status_code == 400  # the login form is protected
    client.post(
        "/console/login",
        data={"login": ADMIN[0], "password": ADMIN[1], "csrf_token": token},
    )
    transaction = paid(staff["contract"])
    main = staff["instance"].active_configuration()
    for path, data in [
        ("/console/contracts/1001/instance", {"instance": ""}),
        (f"/console/transactions/{transaction.order_id}/refund", {"amount": "10"}),
        (f"/console/transactions/{transaction.order_id}/check", {}),
        ("/console/instances/isp/configs/new", NEW_CONFIG),
        (f"/console/instances/isp/configs/{main.id}", {**NEW_CONFIG, "name": "main"}),
        ("/console/tasks/status-check/run", {}),
    ]:
        assert client.post(path, data=data).status_code == 400, path
    assert Contract.by_number("1001").instance_id is not None
    assert transaction.refunds.count() == 0
    assert ModuleConfiguration.select().count() == 1
    assert ModuleConfiguration.get_by_id(main.id).params == main.params
    assert AuditEntry.select().count() == 0


# -- against the sandbox: re-check and reconciliation -----------------------------


def live_admin(world):
    """Log the admin into the live app's console."""
    with in_app(world):
        accounts.add_operator(*ADMIN, admin=True)
    client = world.app.test_client()
    console_login(client)
    return client


def test_recheck_applies_what_uniteller_says_and_is_audited(world):
    world.faults(drop_callbacks=True)
    order_id, _, _ = pay_by_card(world, "500")
    world.settle()
    client = live_admin(world)
    page = client.post(f"/console/transactions/{order_id}/check", follow_redirects=True)
    assert "Статус перепроверен: Оплачен" in page.get_data(as_text=True)
    with in_app(world):
        assert Transaction.by_order_id(order_id).status == "paid"
        (entry,) = audit_entries("transaction.check")
        assert entry.before["status"] in ("new", "waiting")
        assert entry.after["status"] == "paid"


def test_reconciliation_runs_as_a_job_reports_and_fixes_a_missing_credit(
    world, run_jobs
):
    world.faults(drop_callbacks=True)
    order_id, _, _ = pay_by_card(world, "500")
    world.settle()
    client = live_admin(world)
    today = isp_today(world.app).isoformat()
    period = {"instance": "isp", "from": today, "to": today}
    assert "Сверить" in client.get("/console/reconcile?instance=isp").get_data(
        as_text=True
    )
    # A GET only shows the form: nothing is asked of Uniteller.
    looked = client.get(f"/console/reconcile?instance=isp&from={today}&to={today}")
    assert 'id="reconcile-run"' not in looked.get_data(as_text=True)
    compare = client.post("/console/reconcile", data=period)
    assert compare.status_code == 302
    run_url = compare.headers["Location"]
    waiting = client.get(run_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert (
        waiting.startswith('<div id="reconcile-run" hx-get=') and "every 2s" in waiting
    )
    run_jobs(world.app)
    text = client.get(run_url).get_data(as_text=True)
    assert "оплачен в Uniteller, не зачислен у нас" in text and order_id in text
    assert 'hx-trigger="every 2s"' not in text  # done: it stops polling
    with in_app(world):
        assert AuditEntry.select().count() == 0  # comparing changes nothing
    fixed = client.post("/console/reconcile", data={**period, "fix": "1"})
    assert fixed.status_code == 302
    run_jobs(world.app)
    assert "да" in client.get(fixed.headers["Location"]).get_data(as_text=True)
    with in_app(world):
        transaction = Transaction.by_order_id(order_id)
        assert transaction.status == "paid"
        assert Contract.get_by_id(transaction.contract_id).balance == 50000
        (entry,) = audit_entries("reconcile.fix")
        assert (entry.after["from"], entry.after["to"]) == (today, today)
