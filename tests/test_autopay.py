"""Autopay: binding, due dates in the ISP's timezone, charges, declines, hooks, API."""

import email
import email.policy
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import pytest
import requests
from rq import Queue

from cabinet import acquirer, autopay, clock, contract_sync, events
from cabinet.autopay import charging, states
from cabinet.extensions import QUEUE_NAME
from cabinet.labels import CHARGE_STATUS_LABELS
from cabinet.models import (
    Autopay,
    AutopayCharge,
    AutopayConsent,
    Contract,
    Notice,
    Transaction,
)
from cabinet.uniteller.client import UnitellerClient
from tests.helpers import (
    ALL_MODES,
    add_autopays_like,
    bind_autopay,
    daily_run,
    in_app,
    isp_today,
    next_weekday,
)


def state(world):
    with in_app(world):
        contract = Contract.by_number("1001")
        current = autopay.autopay_of(contract)
        charges = list(current.charges.order_by(AutopayCharge.id)) if current else []
        return contract.balance, current, charges


# --- due dates ---------------------------------------------------------------------


class Weekly:
    mode, weekday, day_of_month, state = "weekly", 2, None, "active"


class Monthly:
    mode, weekday, state = "monthly", None, "active"

    def __init__(self, day):
        self.day_of_month = day


@pytest.mark.parametrize(
    "day_of_month, month, expected",
    [
        (31, date(2027, 2, 1), date(2027, 2, 28)),
        (31, date(2028, 2, 1), date(2028, 2, 29)),
        (30, date(2027, 2, 1), date(2027, 2, 28)),
        (31, date(2027, 4, 1), date(2027, 4, 30)),
        (31, date(2027, 5, 1), date(2027, 5, 31)),
        (29, date(2027, 2, 1), date(2027, 2, 28)),
        (1, date(2027, 3, 1), date(2027, 3, 1)),
    ],
)
def test_monthly_day_falls_on_the_last_day_of_a_shorter_month(
    day_of_month, month, expected
):
    days = [month + timedelta(days=n) for n in range(31)]
    due = [
        d
        for d in days
        if d.month == month.month and autopay.due_on(Monthly(day_of_month), d)
    ]
    assert due == [expected]


def test_a_year_of_dates_charges_each_period_once():
    year = [date(2027, 1, 1) + timedelta(days=n) for n in range(365)]
    weekly = [d for d in year if autopay.due_on(Weekly, d)]
    assert len(weekly) == 52 and all(d.weekday() == 2 for d in weekly)
    assert len({autopay.period_of(Weekly, d) for d in weekly}) == 52
    monthly = [d for d in year if autopay.due_on(Monthly(31), d)]
    assert [d.month for d in monthly] == list(range(1, 13))
    assert len({autopay.period_of(Monthly(31), d) for d in monthly}) == 12


def test_local_date_turns_at_midnight_moscow_not_utc(app):
    with in_app(app):
        assert clock.local_today(datetime(2027, 3, 1, 20, 59)) == date(2027, 3, 1)
        assert clock.local_today(datetime(2027, 3, 1, 21, 0)) == date(2027, 3, 2)


# --- binding --------------------------------------------------------------------


def test_weekly_binding_then_the_due_day_charges_once(autopay_world, run_jobs):
    world = autopay_world
    bind_order, _ = bind_autopay(world, "weekly", "300", weekday=2)
    balance, current, _ = state(world)
    assert current.state == "active" and current.parent.order_id == bind_order
    assert balance == 30000  # the binding payment is a real top-up
    with in_app(world):
        consent = AutopayConsent.get()
        assert consent.terms_version == autopay.TERMS_VERSION and consent.ip
    due = next_weekday(2)
    daily_run(world, due - timedelta(days=1), run_jobs)
    assert state(world)[2] == []  # not due yet
    daily_run(world, due, run_jobs)
    daily_run(world, due, run_jobs)  # a second run the same day
    daily_run(world, due + timedelta(days=1), run_jobs)  # catch-up sees it done
    balance, _, charges = state(world)
    assert [(c.status, c.amount) for c in charges] == [("succeeded", 30000)]
    assert balance == 60000
    with in_app(world):
        assert Transaction.get_by_id(charges[0].transaction_id).status == "paid"
        assert Notice.select().where(Notice.kind == "charge_succeeded").count() == 1


def test_monthly_mode_charges_on_its_day(autopay_world, run_jobs):
    world = autopay_world
    bind_autopay(world, "monthly", "250", day=31)
    target = isp_today() + timedelta(days=40)
    last = (target.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(
        days=1
    )
    daily_run(world, last, run_jobs)
    balance, _, charges = state(world)
    assert [c.status for c in charges] == ["succeeded"] and balance == 50000


def test_missed_runs_are_caught_up_within_the_window_only(autopay_world, run_jobs):
    world = autopay_world
    bind_autopay(world, "weekly", "300", weekday=2)
    due = next_weekday(2)
    daily_run(world, due + timedelta(days=2), run_jobs)  # scheduler was down 2 days
    assert [c.status for c in state(world)[2]] == ["succeeded"]
    later = next_weekday(2, due)
    daily_run(world, later + timedelta(days=4), run_jobs)  # down too long
    assert len(state(world)[2]) == 1


@pytest.mark.serial  # concurrency: not beside another busy worker
def test_concurrent_runs_charge_once(autopay_world, run_jobs):
    world = autopay_world
    bind_autopay(world, "weekly", "300", weekday=2)
    due = next_weekday(2)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: daily_run(world, due), range(2)))
    run_jobs(world.app)
    world.settle()
    assert [c.status for c in state(world)[2]] == ["succeeded"]


def test_a_run_s_charges_go_side_by_side_within_the_concurrency_limit(
    autopay_world, run_jobs, redis, monkeypatch
):
    world = autopay_world
    bind_autopay(world, "weekly", "300", weekday=2)
    add_autopays_like(world, 7)  # seven more subscribers on the same binding
    world.app.config["RECURRENT_CONCURRENCY"] = 3
    world.faults(latency_ms=150)  # long enough for the tries to overlap
    real, lock, flight = UnitellerClient.recurrent, threading.Lock(), [0, 0]

    def counted(self, *args, **kwargs):
        with lock:
            flight[0] += 1
            flight[1] = max(flight)
        try:
            return real(self, *args, **kwargs)
        finally:
            with lock:
                flight[0] -= 1

    monkeypatch.setattr(UnitellerClient, "recurrent", counted)
    daily_run(world, next_weekday(2))
    queued = Queue(QUEUE_NAME, connection=redis).jobs
    assert [job.func_name for job in queued] == ["cabinet.jobs.charge_autopays"]
    run_jobs(world.app)
    world.settle()
    with in_app(world):
        charges = list(AutopayCharge.select())
        paid = Transaction.select().where(
            Transaction.order_id.startswith("R"), Transaction.status == "paid"
        )
        assert sorted(c.status for c in charges) == ["succeeded"] * 8
        assert paid.count() == 8
        others = Contract.select().where(Contract.number.startswith("20"))
        assert [c.balance for c in others] == [30000] * 7
    assert flight[1] == 3, "the tries did not run side by side up to the limit"


def test_changing_the_amount_needs_no_new_card(autopay_world):
    world = autopay_world
    bind_order, session = bind_autopay(world, "weekly", "300", weekday=2)
    answer = session.post(
        f"{world.url}/autopay",
        data={
            "mode": "monthly",
            "day_of_month": "5",
            "amount": "700",
            "password": "demo-pass",
            "consent": "y",
        },
        allow_redirects=False,
    )
    assert answer.status_code == 302
    _, current, _ = state(world)
    assert (current.mode, current.day_of_month, current.amount) == ("monthly", 5, 70000)
    assert current.parent.order_id == bind_order


def test_setup_needs_the_password_and_consent(autopay_world):
    world = autopay_world
    session = requests.Session()
    session.post(f"{world.url}/login", data={"number": "1001", "password": "demo-pass"})
    base = {"mode": "weekly", "weekday": "1", "amount": "300"}
    wrong = session.post(
        f"{world.url}/autopay", data={**base, "password": "nope", "consent": "y"}
    )
    no_consent = session.post(
        f"{world.url}/autopay", data={**base, "password": "demo-pass"}
    )
    assert wrong.status_code == 400 and "Неверный пароль" in wrong.text
    assert no_consent.status_code == 400 and "согласие" in no_consent.text
    assert state(world)[1] is None


def test_turning_off_stops_future_charges(autopay_world, run_jobs):
    world = autopay_world
    _, session = bind_autopay(world, "weekly", "300", weekday=2)
    session.post(f"{world.url}/autopay/off")
    daily_run(world, next_weekday(2), run_jobs)
    balance, current, charges = state(world)
    assert current.state == "off" and charges == [] and balance == 30000


# --- declines ---------------------------------------------------------------------


def test_soft_decline_is_retried_daily_then_gives_up(make_world, run_jobs):
    # One retry: the sandbox's own clock sees every try on one day, and it
    # declines a third failed try on a parent in a day, as Uniteller does.
    world = make_world(config=(*ALL_MODES, "autopay_retry_days=1"))
    _, session = bind_autopay(world, "weekly", "300", weekday=2)
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
    due = next_weekday(2)
    for offset in range(5):
        daily_run(world, due + timedelta(days=offset), run_jobs)
    _, current, charges = state(world)
    assert [(c.status, c.tries) for c in charges] == [("failed", 2)]  # 1 + 1 retry
    assert current.state == "active"  # insufficient funds is not the card's fault
    assert charges[0].result_code == "AS102"


def test_no_more_than_two_failed_charges_per_parent_per_day(autopay_world, run_jobs):
    world = autopay_world
    bind_autopay(world, "automatic", "300")
    for key in ("a", "b", "c"):
        with in_app(world):
            autopay.request_charge("1001", 150000, "test", key=key)  # declined band
    run_jobs(world.app)
    world.settle()
    statuses = sorted(c.status for c in state(world)[2])
    assert statuses == ["retry", "retry", "retry"]
    with in_app(world):
        sent = Transaction.select().where(Transaction.kind == "recurrent").count()
    assert sent == 2  # the third waits for tomorrow without reaching Uniteller


def test_hard_decline_suspends_and_tells_the_subscriber(autopay_world, run_jobs):
    world = autopay_world
    bind_order, _ = bind_autopay(world, "weekly", "300", weekday=2)
    requests.post(
        f"{world.sandbox_url}/_sandbox/orders/{bind_order}/expire-card", timeout=5
    )
    daily_run(world, next_weekday(2), run_jobs)
    balance, current, charges = state(world)
    assert current.state == "suspended" and charges[0].status == "failed"
    assert balance == 30000
    with in_app(world):
        assert Notice.select().where(Notice.kind == "autopay_suspended").count() == 1


def test_worker_killed_after_sending_is_resolved_without_a_second_charge(
    autopay_world, run_jobs
):
    world = autopay_world
    bind_autopay(world, "weekly", "300", weekday=2)
    daily_run(world, next_weekday(2))  # planned, not yet sent
    with in_app(world):
        charge = AutopayCharge.get()
        transaction, configuration, parent_order_id = charging._prepare_try(charge.id)
        # The request goes out, then the worker dies before recording anything.

        acquirer.client_for(configuration).recurrent(
            transaction.order_id, transaction.amount, parent_order_id
        )
        assert autopay.charge(charge.id) is None  # a rerun does not send again
        assert autopay.resolve(charge.id) == "succeeded"
    world.settle()
    balance, _, charges = state(world)
    assert [c.status for c in charges] == ["succeeded"] and balance == 60000
    orders = requests.get(f"{world.sandbox_url}/_sandbox/orders", timeout=5).json()
    recurrent = [o for o in orders if o["order_id"].startswith("R")]
    assert len(recurrent) == 1


def test_worker_killed_before_sending_sends_the_same_order_once(
    autopay_world, run_jobs
):
    world = autopay_world
    bind_autopay(world, "weekly", "300", weekday=2)
    daily_run(world, next_weekday(2))
    with in_app(world):
        charge = AutopayCharge.get()
        transaction, _, _ = charging._prepare_try(charge.id)  # then the worker died
        assert autopay.resolve(charge.id) == "resend"
    run_jobs(world.app)
    world.settle()
    _, _, charges = state(world)
    assert [(c.status, c.tries, c.transaction_id) for c in charges] == [
        ("succeeded", 1, transaction.id)
    ]


def test_the_charge_table_keeps_settled_charges_and_unknown_outcomes():
    assert set(states.FROM) == set(CHARGE_STATUS_LABELS)  # every stored status
    for sources in states.FROM.values():
        assert not set(sources) & set(states.FINAL)  # nothing leaves a final status
    # A try whose answer was lost is resolved before anything else is sent.
    assert not states.allowed(states.UNKNOWN, states.DUE)
    assert not states.allowed(states.UNKNOWN, states.CANCELED)


def test_a_settled_charge_cannot_go_back_to_due(autopay_world, run_jobs):
    world = autopay_world
    bind_autopay(world, "weekly", "300", weekday=2)
    daily_run(world, next_weekday(2), run_jobs)
    with in_app(world):
        charge = AutopayCharge.get()
        assert charge.status == states.SUCCEEDED
        assert states.move(states.DUE, AutopayCharge.id == charge.id) == 0
        with pytest.raises(ValueError):
            states.move(
                states.DUE, AutopayCharge.id == charge.id, among=[states.SUCCEEDED]
            )
        assert AutopayCharge.get_by_id(charge.id).status == states.SUCCEEDED


# --- hooks and the automatic mode ---------------------------------------------------


def test_a_handler_may_replace_the_amount_or_skip(autopay_world, run_jobs):
    world = autopay_world
    bind_autopay(world, "weekly", "300", weekday=2)
    due = next_weekday(2)

    def double(sender, decision):
        decision.amount = decision.amount * 2

    with events.before_charge.connected_to(double):
        daily_run(world, due, run_jobs)
    assert [c.amount for c in state(world)[2]] == [60000]

    def skip(sender, decision):
        decision.skip("holiday")

    with events.before_charge.connected_to(skip):
        daily_run(world, next_weekday(2, due), run_jobs)
    assert [(c.status, c.reason) for c in state(world)[2]][1] == ("skipped", "holiday")


def test_built_in_policy_tops_up_below_threshold_and_provider_can_replace_it(
    autopay_world, run_jobs
):
    world = autopay_world
    bind_autopay(world, "automatic", "50")  # balance 50.00 < threshold 100.00
    daily_run(world, isp_today(), run_jobs)
    balance, _, charges = state(world)
    assert [c.amount for c in charges] == [45000] and balance == 50000  # up to 500
    daily_run(world, isp_today(), run_jobs)
    assert len(state(world)[2]) == 1  # once a day

    def provider(sender, proposals):
        proposals.clear()
        proposals.append(events.AutomaticCharge("1001", 12300, "ISP script"))

    with events.automatic_charges.connected_to(provider):
        daily_run(world, isp_today() + timedelta(days=1), run_jobs)
    assert [c.reason for c in state(world)[2]][-1] == "ISP script"
    assert state(world)[0] == 62300


def test_the_built_in_policy_reads_the_billing_s_balance_when_known(
    autopay_world, run_jobs
):
    world = autopay_world
    bind_autopay(world, "automatic", "300")  # the cabinet's sum 300.00: above 100.00
    with in_app(world):
        # The billing says 20.00 (the subscriber spent it on its services).
        contract_sync.upsert("1001", {"billing_balance": "20.00"}, "api")
    daily_run(world, isp_today(), run_jobs)
    (charge,) = state(world)[2]
    assert charge.amount == 48000  # up to 500.00 from the billing's 20.00
    assert "billing" in charge.reason


def test_http_api_charges_in_automatic_mode(autopay_world, run_jobs):
    world = autopay_world
    runner = world.app.test_cli_runner()
    token = runner.invoke(args=["token", "add", "billing"]).output.strip()
    url = f"{world.url}/api/autopay/charge"

    def post(body, auth=token):
        return requests.post(
            url, json=body, timeout=5, headers={"Authorization": f"Bearer {auth}"}
        )

    assert post({"contract": "1001", "amount": "100"}, auth="wrong").status_code == 401
    assert post({"contract": "1001", "amount": "100"}).status_code == 409
    bind_autopay(world, "automatic", "300")
    assert post({"contract": "1001", "amount": "-5"}).status_code == 400
    assert post({"contract": "1001", "amount": "99999999"}).status_code == 400
    assert post({"contract": "nobody", "amount": "100"}).status_code == 404
    first = post({"contract": "1001", "amount": "100", "key": "inv-7"})
    again = post({"contract": "1001", "amount": "100", "key": "inv-7"})
    assert first.status_code == 202 and first.json()["charge"] == again.json()["charge"]
    run_jobs(world.app)
    world.settle()
    assert state(world)[0] == 40000
    runner.invoke(args=["token", "revoke", "billing"])
    assert post({"contract": "1001", "amount": "100"}).status_code == 401


def test_cli_charge(autopay_world, run_jobs):
    world = autopay_world
    runner = world.app.test_cli_runner()
    assert runner.invoke(args=["autopay", "charge", "1001", "100"]).exit_code == 2
    bind_autopay(world, "automatic", "300")
    result = runner.invoke(args=["autopay", "charge", "1001", "100", "--reason", "x"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["autopay", "charge", "1001", "abc"]).exit_code == 2
    run_jobs(world.app)
    world.settle()
    assert state(world)[0] == 40000
    assert "succeeded" in runner.invoke(args=["autopay", "show", "1001"]).output


def test_notices_are_emailed_through_smtp(make_world, run_jobs):
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    with socket.socket() as probe:  # a free port for the SMTP server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        world = make_world(
            app_settings={"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port}, config=ALL_MODES
        )
        with in_app(world):
            Contract.update(email="ivanov@example.com").execute()
        bind_autopay(world, "weekly", "300", weekday=2)
        run_jobs(world.app)
    finally:
        controller.stop()
    assert [e.rcpt_tos for e in received] == [["ivanov@example.com"]]
    message = email.message_from_bytes(received[0].content, policy=email.policy.default)
    assert "1001" in message["Subject"]
    assert "B1001-" in message.get_content()  # names the card payment


def test_autopay_page_shows_state_next_charge_and_parent(autopay_world):
    world = autopay_world
    bind_order, session = bind_autopay(world, "weekly", "300", weekday=2)
    page = session.get(f"{world.url}/autopay").text
    assert "Включён" in page and bind_order in page
    today = isp_today()
    expected = today + timedelta(days=(2 - today.weekday()) % 7)
    assert expected.strftime("%d.%m.%Y") in page
    with in_app(world):
        assert Autopay.get().state == "active"
