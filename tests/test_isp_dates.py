"""Dates are the ISP's (TIMEZONE, Moscow), also when the machine's UTC date differs.

Each test runs twice with the clock travelled (time-machine, ticking on from
there) to where UTC and Moscow disagree on the date: 22:30 UTC (01:30 the next
day in Moscow) and 00:30 Moscow time (21:30 UTC the day before). time-machine
moves the clock of the whole process, so the live app and sandbox the tests
serve in threads see the same time; worlds are built after the clock moved.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from cabinet import autopay, tasks
from cabinet.clock import local_today
from cabinet.models import AutopayCharge, Transaction
from tests.helpers import (
    ALL_MODES,
    SUCCESS_CARD,
    bind_autopay,
    console_login,
    in_app,
    isp_today,
    login,
    new_payment,
    pay_by_card,
)

ISP_DAY = date(2026, 3, 11)  # the date in Moscow at both moments
MACHINE_DAY = date(2026, 3, 10)  # the machine's (UTC) date then
CLOCKS = {
    "22:30 UTC": datetime(2026, 3, 10, 22, 30, tzinfo=UTC),
    "00:30 Moscow": datetime(2026, 3, 10, 21, 30, tzinfo=UTC),
}


@pytest.fixture(params=list(CLOCKS.values()), ids=list(CLOCKS))
def clock(request):
    """The process's clock at one of the moments, ticking on from there."""
    with time_machine.travel(request.param, tick=True):
        assert datetime.now(UTC).date() == MACHINE_DAY
        assert isp_today() == ISP_DAY
        yield request.param


def period(day, other=None):
    return f"from={day.isoformat()}&to={(other or day).isoformat()}"


def test_reconcile_cli_reads_from_and_to_as_dates_in_timezone(clock, make_world):
    world = make_world()
    world.faults(drop_callbacks=True)
    order_id, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    runner = world.app.test_cli_runner()
    day = isp_today(world.app).isoformat()
    assert day == ISP_DAY.isoformat()
    found = runner.invoke(args=["reconcile", "isp", "--from", day, "--to", day])
    assert found.exit_code == 1, found.output
    assert "missing_credit" in found.output and order_id in found.output
    fixed = runner.invoke(
        args=["reconcile", "isp", "--from", day, "--to", day, "--fix"]
    )
    assert fixed.exit_code == 0 and "fixed" in fixed.output
    with in_app(world):
        assert Transaction.by_order_id(order_id).status == "paid"


def test_the_status_check_finds_an_order_of_the_isp_s_today(clock, make_world):
    world = make_world()
    world.faults(drop_callbacks=True)
    order_id, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    with in_app(world):
        run = tasks.run_task("status-check")  # the clock's now, not a given one
        assert (run.looked_at, run.changed, run.errors) == (1, 1, 0)
        assert Transaction.by_order_id(order_id).status == "paid"


def test_history_period_filter_is_in_timezone(clock, client, demo):
    order_id = new_payment(demo["contract"]).order_id
    login(client)
    assert order_id in client.get(f"/payments?{period(ISP_DAY)}").text
    assert order_id not in client.get(f"/payments?{period(MACHINE_DAY)}").text
    week = period(MACHINE_DAY - timedelta(days=6), MACHINE_DAY)
    assert order_id not in client.get(f"/payments?{week}").text


def test_monitor_period_and_its_default_are_in_timezone(clock, client, staff):
    order_id = new_payment(staff["contract"]).order_id
    console_login(client)
    url = "/console/monitor?instance=isp"
    assert order_id in client.get(url).text  # the last 7 days up to today in Moscow
    page = client.get(url).text
    assert f'name="to" value="{ISP_DAY.isoformat()}"' in page
    assert order_id in client.get(f"{url}&{period(ISP_DAY)}").text
    assert order_id not in client.get(f"{url}&{period(MACHINE_DAY)}").text


def test_reconcile_page_defaults_to_yesterday_and_today_in_timezone(
    clock, client, staff
):
    console_login(client)
    page = client.get("/console/reconcile?instance=isp").text
    yesterday = ISP_DAY - timedelta(days=1)
    assert f'name="from" value="{yesterday.isoformat()}"' in page
    assert f'name="to" value="{ISP_DAY.isoformat()}"' in page


def test_autopay_due_today_is_the_isp_s_today(clock, make_world, run_jobs):
    world = make_world(config=ALL_MODES)
    _, session = bind_autopay(world, "weekly", "300", weekday=ISP_DAY.weekday())
    page = session.get(f"{world.url}/autopay").text
    assert ISP_DAY.strftime("%d.%m.%Y") in page  # the next charge: today, in Moscow
    with in_app(world):
        assert local_today() == ISP_DAY
        autopay.run()  # the clock's now
    run_jobs(world.app)
    world.settle()
    with in_app(world):
        (charge,) = AutopayCharge.select()
        assert (charge.due_on, charge.status) == (ISP_DAY, "succeeded")
        assert (
            charge.period
            == f"{ISP_DAY.isocalendar()[0]}-W{ISP_DAY.isocalendar()[1]:02d}"
        )
