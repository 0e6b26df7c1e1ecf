"""The status check, the status request and reconciliation, against the sandbox."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from cabinet import acquirer, jobs, payments, status_check, tasks
from cabinet.clock import utcnow
from cabinet.models import Contract, ModuleConfiguration, TaskRun, Transaction
from cabinet.reconcile import reconcile
from cabinet.uniteller.client import RateLimited, UnitellerClient, period_fields
from tests.helpers import DECLINE_CARD, SUCCESS_CARD, in_app, isp_today, pay_by_card


def fresh(world, order_id):
    with in_app(world):
        transaction = Transaction.by_order_id(order_id)
        return transaction, Contract.get_by_id(transaction.contract_id).balance


def run_task(world, name="status-check", **kwargs):
    with in_app(world):
        return tasks.run_task(name, **kwargs)


def test_paid_order_with_every_callback_dropped_is_credited_by_the_task(world):
    world.faults(drop_callbacks=True)
    order_id, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    assert fresh(world, order_id)[0].status == "new"
    run = run_task(world)
    assert (run.looked_at, run.changed, run.errors) == (1, 1, 0)
    transaction, balance = fresh(world, order_id)
    assert transaction.status == "paid" and balance == 50000
    assert transaction.bill_number and transaction.next_check_at is None
    assert run_task(world).looked_at == 0  # nothing left to ask about


def test_declined_order_is_marked_failed_with_uniteller_code(world):
    order_id, _, _ = pay_by_card(world, "500", DECLINE_CARD)
    run_task(world)
    transaction, balance = fresh(world, order_id)
    assert transaction.status == "failed" and balance == 0
    assert transaction.response_code == "AS100" and transaction.message


def test_unknown_order_backs_off_then_expires(world):
    with in_app(world):
        contract = Contract.by_number("1001")
        transaction, _ = payments.start_payment(contract, 10000, "u", "u")
        start = utcnow()
        stats = status_check.run(now=start)
        assert stats.looked_at == 1 and stats.changed == 0
        planned = Transaction.get_by_id(transaction.id).next_check_at
        assert timedelta(minutes=4) < planned - start <= timedelta(minutes=5)
        assert status_check.run(now=start + timedelta(minutes=1)).looked_at == 0
        later = start + timedelta(hours=2)
        assert status_check.run(now=later).changed == 1
        assert Transaction.get_by_id(transaction.id).status == "expired"


def answer_results_with(monkeypatch, answer):
    """Make Uniteller's /results/ answer `answer` (a text, or an exception)."""
    post = UnitellerClient._post

    def _post(self, path, data):
        if path != "/results/":
            return post(self, path, data)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(UnitellerClient, "_post", _post)


def test_an_order_whose_row_does_not_parse_is_not_taken_for_unknown(world, monkeypatch):
    with in_app(world):
        contract = Contract.by_number("1001")
        transaction, _ = payments.start_payment(contract, 10000, "u", "u")
    # A row of this order in a shape we cannot read (a column short).
    answer_results_with(monkeypatch, f"{transaction.order_id};Paid;100.00\r\n")
    with in_app(world):
        stats = status_check.run(now=utcnow() + timedelta(hours=2))
        assert Transaction.get_by_id(transaction.id).status == "new"
        assert stats.errors == 1 and "did not parse" in " ".join(stats.notes)


def test_a_429_is_a_wait_not_an_error(world, monkeypatch):
    with in_app(world):
        contract = Contract.by_number("1001")
        transaction, _ = payments.start_payment(contract, 10000, "u", "u")
    answer_results_with(monkeypatch, RateLimited("/results/: HTTP 429"))
    with in_app(world):
        stats = status_check.run(now=utcnow() + timedelta(hours=2))
        assert stats.errors == 0 and "wait" in " ".join(stats.notes)
        assert Transaction.get_by_id(transaction.id).status == "new"


def test_reconcile_reports_a_row_it_cannot_read(world, monkeypatch):
    order_id, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    answer_results_with(monkeypatch, f"{order_id};Paid\r\n;;\r\n")
    today = isp_today(world.app)
    with in_app(world):
        instance = Transaction.by_order_id(order_id).instance
        report = reconcile(
            instance, today - timedelta(days=1), today + timedelta(days=1)
        )
    kinds = [(d.kind, d.order_id) for d in report.differences]
    assert kinds == [("unreadable_there", order_id), ("unreadable_there", "")]


def test_gateway_failures_change_nothing_and_are_counted(make_world):
    world = make_world()
    order_id, _, _ = pay_by_card(world, "500", DECLINE_CARD)
    world.faults(error_rate=1.0)
    run = run_task(world)
    assert run.errors == 1 and "HTTP 500" in run.note
    assert fresh(world, order_id)[0].status == "new"
    world.faults(error_rate=0)
    requests.delete(f"{world.sandbox_url}/_sandbox/faults", timeout=5)
    run_task(world)
    assert fresh(world, order_id)[0].status == "failed"


@pytest.mark.serial  # concurrency: not beside another busy worker
def test_two_workers_at_once_keep_to_the_request_limit(make_world):
    """The sandbox answers 429 to a request sooner than its interval: none happen."""
    world = make_world(
        app_settings={"RESULTS_MIN_INTERVAL": 0.4},
        SANDBOX_RESULTS_INTERVAL=0.4,
        SANDBOX_RESULTS_HOLD_SECONDS=0,  # an early request is refused at once
    )
    world.faults(drop_callbacks=True)
    orders = [pay_by_card(world, "100", SUCCESS_CARD)[0] for _ in range(2)]
    ids = [fresh(world, o)[0].id for o in orders]

    def one_worker(_):
        with in_app(world):
            runs = [status_check.run()]
            runs += [status_check.check_order(id_) for id_ in ids]
            # A 429 is a wait, not an error, for the product: count both here.
            return sum(r.errors + sum("wait" in n for n in r.notes) for r in runs)

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(one_worker, range(2))) == [0, 0]
    assert all(fresh(world, o)[0].status == "paid" for o in orders)


def test_two_cron_processes_produce_one_run_per_tick(world, redis):
    with in_app(world):
        first = jobs.run_scheduled_task("status-check")
        second = jobs.run_scheduled_task("status-check")
    assert first is not None and second is None
    with in_app(world):
        assert TaskRun.select().count() == 1


def test_return_page_enqueues_one_check_per_order(world, run_jobs, redis):
    from rq import Queue

    from cabinet.extensions import CHECKS_QUEUE_NAME

    world.faults(drop_callbacks=True)
    order_id, location, _ = pay_by_card(world, "500", SUCCESS_CARD)
    session = requests.Session()
    session.post(f"{world.url}/login", data={"number": "1001", "password": "demo-pass"})
    for _ in range(3):
        session.get(location)
    run_jobs(world.app)
    assert fresh(world, order_id)[0].status == "paid"
    checks = Queue(CHECKS_QUEUE_NAME, connection=redis)
    assert len(checks.finished_job_registry) == 1


def test_status_request_answers_from_our_records(world):
    def ask(order_id, upoint="00000001"):
        return requests.post(
            f"{world.url}/uniteller/isp/status",
            data={"order_id": order_id, "upoint_id": upoint},
            timeout=5,
        ).text

    paid, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    assert ask(paid) == "PAID"
    assert ask(paid, upoint="99999999") == "NEW"
    assert ask("no-such-order") == "NEW"
    with in_app(world):
        payments.apply_status(paid, "canceled", source="callback")
    assert ask(paid) == "CANCELLED"


def test_status_request_reads_the_shop_id_case_insensitively(world):
    """Shop_IDP is case-insensitive at Uniteller, so upoint_id is too (v1.43)."""
    paid, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    with in_app(world):
        configuration = Transaction.by_order_id(paid).configuration
        ModuleConfiguration.update(
            params={**configuration.params, "shop_id": "Shop-A1"}
        ).where(ModuleConfiguration.id == configuration.id).execute()
    answer = requests.post(
        f"{world.url}/uniteller/isp/status",
        data={"order_id": paid, "upoint_id": "SHOP-a1"},
        timeout=5,
    )
    assert answer.text == "PAID"


def test_reconcile_finds_and_fixes_a_missing_credit(world):
    world.faults(drop_callbacks=True)
    missing, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    today = isp_today(world.app)
    with in_app(world):
        instance = Transaction.by_order_id(missing).instance
        report = reconcile(
            instance, today - timedelta(days=1), today + timedelta(days=1)
        )
        assert [(d.kind, d.order_id) for d in report.differences] == [
            ("missing_credit", missing)
        ]
        assert Contract.by_number("1001").balance == 0
        fixed = reconcile(
            instance, today - timedelta(days=1), today + timedelta(days=1), fix=True
        )
        assert fixed.differences[0].fixed
        assert Contract.by_number("1001").balance == 50000
        assert (
            reconcile(
                instance, today - timedelta(days=1), today + timedelta(days=1)
            ).differences
            == []
        )


@pytest.mark.nodb
@pytest.mark.parametrize(
    "local, tz, utc",
    [
        ("0 6 * * *", "Europe/Moscow", "0 3 * * *"),
        ("30 1 * * *", "Europe/Moscow", "30 22 * * *"),
        ("0 1 * * 1", "Europe/Moscow", "0 22 * * 0"),
        ("*/5 * * * *", "Europe/Moscow", "*/5 * * * *"),
        ("0 6 * * *", "UTC", "0 6 * * *"),
        ("0 2 * * *", "Asia/Vladivostok", "0 16 * * *"),
    ],
)
def test_schedules_in_the_isp_timezone_become_utc_crons(local, tz, utc):
    assert tasks.utc_cron(local, tz) == utc


@pytest.mark.nodb
def test_bad_cron_is_refused():
    with pytest.raises(tasks.ScheduleError):
        tasks.utc_cron("every day", "Europe/Moscow")
    with pytest.raises(tasks.ScheduleError):
        tasks.utc_cron("0 1 1 * *", "Europe/Moscow")


def test_tasks_cli_lists_and_runs(world):
    runner = world.app.test_cli_runner()
    assert runner.invoke(args=["tasks", "run", "status-check"]).exit_code == 0
    listing = runner.invoke(args=["tasks"])
    assert "status-check" in listing.output and "manual" in listing.output
    assert "*/5 * * * *" in listing.output
    bad = runner.invoke(args=["tasks", "run", "nope"])
    assert bad.exit_code == 2 and "no task 'nope'" in bad.output


def test_reconcile_cli(world):
    world.faults(drop_callbacks=True)
    pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    runner = world.app.test_cli_runner()
    today = isp_today(world.app).isoformat()
    result = runner.invoke(args=["reconcile", "isp", "--from", today, "--to", today])
    assert result.exit_code == 1 and "missing_credit" in result.output
    result = runner.invoke(
        args=["reconcile", "isp", "--from", today, "--to", today, "--fix"]
    )
    assert "fixed" in result.output and result.exit_code == 0
    bad = runner.invoke(
        args=["reconcile", "isp", "--from", today, "--to", "2000-01-01"]
    )
    assert bad.exit_code == 2


def test_a_results_period_is_spelled_in_uniteller_s_timezone_across_midnight():
    """21:30 UTC on 1 December is 00:30 on 2 December on Uniteller's Moscow clock."""
    start = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)
    end = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
    fields = period_fields(start, end, ZoneInfo("Europe/Moscow"))
    assert [fields[f"Start{k}"] for k in ("Year", "Month", "Day", "Hour", "Min")] == [
        "2026",
        "12",
        "2",
        "0",
        "30",
    ]
    assert (fields["EndDay"], fields["EndHour"], fields["EndMin"]) == ("2", "2", "59")
    in_utc = period_fields(start, None, ZoneInfo("UTC"))
    assert (in_utc["StartDay"], in_utc["StartHour"]) == ("1", "21")
    assert "EndDay" not in in_utc


def test_the_results_timezone_is_a_setting(make_app, shop):
    """UNITELLER_TIMEZONE reaches the client; Moscow unless set otherwise."""
    configuration = ModuleConfiguration(params={"shop_id": shop["shop_id"]})
    for settings, zone in (
        ({}, "Europe/Moscow"),
        ({"UNITELLER_TIMEZONE": "UTC"}, "UTC"),
    ):
        with make_app(**settings).app_context():
            assert acquirer.client_for(configuration).timezone.key == zone
