"""The autopay block of a contract in the console: what happened, and the actions."""

from datetime import timedelta

from cabinet import accounts, autopay
from cabinet.models import AuditEntry, Autopay, AutopayCharge
from tests.helpers import (
    ADMIN,
    OPERATOR,
    bind_autopay,
    console_login,
    in_app,
    isp_today,
    moscow,
)


def operator_client(world, who=OPERATOR):
    """Log an operator into the live app's console."""
    with in_app(world):
        accounts.add_operator(*who, admin=who == ADMIN)
    client = world.app.test_client()
    console_login(client, who)
    return client


def test_the_block_shows_mode_parent_next_charge_and_why_a_charge_failed(
    autopay_world, run_jobs
):
    world = autopay_world
    bind_order, session = bind_autopay(world, "weekly", "300", weekday=2)
    session.post(
        f"{world.url}/autopay",
        data={  # the sandbox's "no funds" band
            "mode": "weekly",
            "weekday": "2",
            "amount": "1500",
            "password": "demo-pass",
            "consent": "y",
        },
    )
    today = isp_today()
    with in_app(world):
        autopay.run(now=moscow(today + timedelta(days=(2 - today.weekday()) % 7)))
    run_jobs(world.app)
    world.settle()
    page = operator_client(world).get("/console/contracts/1001").get_data(as_text=True)
    assert 'id="autopay-block"' in page and "Еженедельно" in page
    assert bind_order in page  # the parent order
    assert "AS102" in page  # why the last charge failed


def test_charge_now_in_automatic_mode_is_audited(autopay_world, run_jobs):
    world = autopay_world
    bind_autopay(world, "automatic", "300")
    client = operator_client(world)
    answer = client.post(
        "/console/contracts/1001/autopay/charge",
        data={"amount": "250", "reason": "по звонку абонента"},
    )
    assert answer.status_code == 302
    run_jobs(world.app)
    world.settle()
    with in_app(world):
        charge = AutopayCharge.get()
        assert (charge.status, charge.amount, charge.source) == (
            "succeeded",
            25000,
            "console:oper",
        )
        entry = AuditEntry.get(AuditEntry.action == "autopay.charge")
        assert entry.login == "oper" and entry.after["amount"] == "250.00"


def test_charge_now_is_refused_outside_automatic_mode_and_for_bad_amounts(
    autopay_world,
):
    world = autopay_world
    bind_autopay(world, "weekly", "300", weekday=2)
    client = operator_client(world)
    page = client.post(
        "/console/contracts/1001/autopay/charge",
        data={"amount": "250", "reason": "x"},
        follow_redirects=True,
    )
    assert "не включён в автоматическом режиме" in page.get_data(as_text=True)
    page = client.post(
        "/console/contracts/1001/autopay/charge",
        data={"amount": "-1", "reason": "x"},
        follow_redirects=True,
    )
    assert "больше нуля" in page.get_data(as_text=True)
    with in_app(world):
        assert AutopayCharge.select().count() == 0
        assert (
            AuditEntry.select().where(AuditEntry.action == "autopay.charge").count()
            == 0
        )


def test_operator_turns_autopay_off_with_an_audit_entry(autopay_world):
    world = autopay_world
    bind_autopay(world, "weekly", "300", weekday=2)
    client = operator_client(world)
    assert client.post("/console/contracts/1001/autopay/off").status_code == 302
    with in_app(world):
        assert Autopay.get().state == "off"
        entry = AuditEntry.get(AuditEntry.action == "autopay.off")
        assert entry.before == {"state": "active"} and entry.after == {"state": "off"}


def test_subscribers_and_anonymous_cannot_use_the_autopay_actions(autopay_world):
    world = autopay_world
    _, session = bind_autopay(world, "automatic", "300")
    for path in (
        "/console/contracts/1001/autopay/charge",
        "/console/contracts/1001/autopay/off",
    ):
        assert (
            session.post(
                f"{world.url}{path}",
                data={"amount": "1", "reason": "x"},
                allow_redirects=False,
            ).status_code
            == 403
        )
        anonymous = world.app.test_client().post(path)
        assert anonymous.status_code == 302 and "/console/login" in anonymous.location
    with in_app(world):
        assert AutopayCharge.select().count() == 0


def test_a_phone_call_with_only_a_name(autopay_world, run_jobs):
    """Find the contract by name, see why autopay failed, refund the card payment."""
    world = autopay_world
    bind_order, session = bind_autopay(world, "weekly", "300", weekday=2)
    session.post(
        f"{world.url}/autopay",
        data={  # the sandbox's "no funds" band
            "mode": "weekly",
            "weekday": "2",
            "amount": "1500",
            "password": "demo-pass",
            "consent": "y",
        },
    )
    today = isp_today()
    with in_app(world):
        autopay.run(now=moscow(today + timedelta(days=(2 - today.weekday()) % 7)))
    run_jobs(world.app)
    world.settle()
    client = operator_client(world)
    found = client.get("/console/contracts?q=иванов").get_data(as_text=True)
    assert "/console/contracts/1001" in found
    page = client.get("/console/contracts/1001").get_data(as_text=True)
    assert "AS102" in page and bind_order in page  # why, and with which card
    refund = client.post(
        f"/console/transactions/{bind_order}/refund",
        data={"amount": "300"},
        follow_redirects=True,
    )
    assert "Возврат 300,00 ₽ выполнен" in refund.get_data(as_text=True)
    world.settle()
    with in_app(world):
        assert accounts.get_contract("1001").balance == 0
