"""Scenarios 7, 8, 10: callbacks racing the status task, lost callbacks, lost Redis."""

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests

from cabinet import autopay, clock, status_check
from cabinet.models import AutopayCharge, Contract, Transaction
from cabinet.uniteller.client import UnitellerClient
from tests.fault.tools import (
    age_charges,
    callback,
    credits_per_order,
    open_orders,
    pay_at_sandbox,
    sandbox_orders,
    scaled,
)
from tests.helpers import bind_autopay, in_app

pytestmark = pytest.mark.fault


def test_7_callbacks_racing_the_status_task_credit_each_order_once(world, shop, figure):
    world.faults(drop_callbacks=True)  # this test delivers them, with skew
    orders = open_orders(world, scaled(1000, 10))
    for _, form in orders:
        pay_at_sandbox(world, form)
    order_ids = [order_id for order_id, _ in orders]
    skew = random.Random(7)
    delays = {order_id: skew.uniform(0, 0.3) for order_id in order_ids}
    delivering = threading.Event()
    delivering.set()

    def status_task():
        with in_app(world.app):
            while delivering.is_set():
                status_check.run()
            status_check.run()

    def deliver(order_id):
        time.sleep(delays[order_id])
        return requests.post(
            f"{world.url}/uniteller/isp/notify",
            data=callback(shop, order_id, "paid"),
            timeout=60,
        ).status_code

    tasks = [threading.Thread(target=status_task) for _ in range(2)]
    for task in tasks:
        task.start()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(deliver, order_ids))
    finally:
        delivering.clear()
        for task in tasks:
            task.join(timeout=120)
    credits = credits_per_order(world, order_ids)
    duplicates = figure(
        7, "duplicate credits", sum(n - 1 for n in credits.values() if n > 1), 0
    )
    lost = figure(7, "lost (not credited)", sum(n == 0 for n in credits.values()), 0)
    assert answers == [200] * len(order_ids)
    assert duplicates == 0 and lost == 0
    with in_app(world.app):
        assert Contract.by_number("1001").balance == 50000 * len(order_ids)


def test_8_with_every_callback_dropped_the_status_task_credits_within_its_interval(
    make_world, figure, monkeypatch
):
    interval = 0.25  # Uniteller's 5 s, scaled down
    world = make_world(
        app_settings={"RESULTS_MIN_INTERVAL": interval},
        SANDBOX_RESULTS_INTERVAL=interval,
    )
    world.faults(drop_callbacks=True)
    asked_at = []
    results = UnitellerClient.results

    def timed_results(self, **query):
        asked_at.append(time.monotonic())
        return results(self, **query)

    monkeypatch.setattr(UnitellerClient, "results", timed_results)
    ticks = scaled(20, 3)
    per_tick = scaled(10, 2)
    paid_on_tick, credited_on_tick, errors = {}, {}, []
    for tick in range(ticks):
        for order_id, form in open_orders(world, per_tick):
            pay_at_sandbox(world, form)
            paid_on_tick[order_id] = tick

        def cron(_):
            with in_app(world.app):
                return status_check.run().errors

        # Two cron processes fire on the same tick; the shared limiter spaces them.
        with ThreadPoolExecutor(2) as pool:
            errors.extend(pool.map(cron, range(2)))
        credits = credits_per_order(world, list(paid_on_tick))
        for order_id, count in credits.items():
            if count and order_id not in credited_on_tick:
                credited_on_tick[order_id] = tick
    lateness = [credited_on_tick.get(o, ticks) - t for o, t in paid_on_tick.items()]
    gaps = [b - a for a, b in zip(asked_at, asked_at[1:], strict=False)]
    crowded = sum(gap < interval * 0.95 for gap in gaps)
    figure(8, "ticks from payment to credit (max)", max(lateness), 0)
    figure(8, "requests per interval (max)", 1 + (crowded > 0), 1)
    figure(8, "errors (429 or other)", sum(errors), 0)
    assert max(lateness) == 0 and len(credited_on_tick) == len(paid_on_tick)
    assert crowded == 0 and sum(errors) == 0
    assert set(credits_per_order(world, list(paid_on_tick)).values()) == {1}


def test_10_redis_flushed_mid_run_the_database_rebuilds_the_due_work(
    make_world, redis, run_jobs, figure
):
    world = make_world(config=("autopay_weekly=yes",))
    contracts = [f"20{n:02d}" for n in range(scaled(20, 3))]
    from cabinet import accounts, configurations

    with in_app(world.app):
        instance = configurations.get_instance("isp")
        for number in contracts:
            accounts.add_contract(number, "Подписчик", "demo-pass", None, instance)
    due_day = None
    for number in contracts:
        world.contract_number = number
        bind_autopay(world, "weekly", "300", weekday=2)
    # Payments whose callbacks are lost, so only the status task can credit them.
    world.faults(drop_callbacks=True)
    open_payments = open_orders(world, scaled(20, 3))
    for _, form in open_payments:
        pay_at_sandbox(world, form)
    with in_app(world.app):
        today = clock.local_today()
        due_day = today + timedelta(days=(2 - today.weekday()) % 7)
        autopay.run(now=_moscow_morning(due_day))
        planned = AutopayCharge.select().count()
    # Some work gets done, then Redis loses everything it held.
    from rq import Queue, SimpleWorker

    from cabinet.extensions import QUEUE_NAME

    with in_app(world):
        SimpleWorker([Queue(QUEUE_NAME, connection=redis)], connection=redis).work(
            burst=True, max_jobs=max(1, planned // 2)
        )
    redis.flushdb()
    age_charges(world, 11)
    with in_app(world.app):
        notes = autopay.run(now=_moscow_morning(due_day)).notes
        status_check.run()
    run_jobs(world.app)
    world.settle()
    with in_app(world.app):
        done = AutopayCharge.select().where(AutopayCharge.status == "succeeded").count()
        still_open = (
            Transaction.select()
            .where(
                Transaction.order_id.in_([o for o, _ in open_payments]),
                Transaction.status.not_in(("paid", "authorized")),
            )
            .count()
        )
    recurrent = [
        o
        for o in sandbox_orders(world)
        if o["order_id"].startswith("R") and o["status"] in ("paid", "authorized")
    ]
    doubled = len(recurrent) - len({o["order_id"].rsplit("-", 1)[0] for o in recurrent})
    figure(
        10,
        "charges due / done",
        f"{planned}/{done}",
        f"{len(contracts)}/{len(contracts)}",
    )
    figure(10, "payments open after the rebuild", still_open, 0)
    figure(10, "doubled charges", doubled, 0)
    assert planned == done == len(contracts), notes
    assert still_open == 0 and doubled == 0
    assert set(credits_per_order(world, [o for o, _ in open_payments]).values()) == {1}


def _moscow_morning(day):
    """07:00 in Moscow on `day`, as naive UTC."""
    from datetime import datetime

    return datetime(day.year, day.month, day.day, 4)
