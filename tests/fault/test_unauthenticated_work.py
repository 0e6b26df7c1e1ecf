"""Scenario 103: what anyone can make us do costs little and delays no charge."""

import re

import pytest
import requests
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry

from cabinet import autopay, payments
from cabinet.extensions import CHECKS_QUEUE_NAME, QUEUE_NAME, QUEUE_NAMES
from cabinet.models import AutopayCharge, Transaction
from tests.fault.tools import open_orders, post_all, scaled
from tests.helpers import bind_autopay, in_app

pytestmark = pytest.mark.fault

STATUS_LIMIT = 20


def due_now(redis):
    """Make every delayed job due (the return and status checks wait a moment)."""
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=redis)
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            registry.remove(job_id)
            queue.enqueue_job(queue.fetch_job(job_id))


def test_103_status_requests_are_limited_and_queue_behind_charges(
    make_world, redis, shop, figure, monkeypatch
):
    world = make_world(
        app_settings={"STATUS_REQUEST_LIMIT": STATUS_LIMIT},
        config=("autopay_automatic=yes",),
    )
    bind_autopay(world, "automatic", "300")
    flood = [order for order, _ in open_orders(world, scaled(60, STATUS_LIMIT + 10))]
    answers = post_all(
        f"{world.url}/uniteller/isp/status",
        [{"order_id": o, "upoint_id": shop["shop_id"]} for o in flood],
        workers=10,
    )
    with in_app(world.app):
        charge = autopay.request_charge("1001", 30000, "due now")
    due_now(redis)
    charges = Queue(QUEUE_NAME, connection=redis)
    checks = Queue(CHECKS_QUEUE_NAME, connection=redis)
    queued_checks = checks.count
    refused = len(flood) - STATUS_LIMIT
    figure(103, "status requests answered 429", answers.count(429), refused)
    figure(103, "checks queued with charges", charges.count - 1, 0)
    assert answers.count(200) == STATUS_LIMIT and answers.count(429) == refused
    assert charges.count == 1 and queued_checks >= STATUS_LIMIT
    assert QUEUE_NAMES == (QUEUE_NAME, CHECKS_QUEUE_NAME)

    # A worker (worker.py listens to QUEUE_NAMES, in that order) takes the charge
    # before any of the checks queued ahead of it.
    with world.app.app_context():
        SimpleWorker(
            [Queue(n, connection=redis) for n in QUEUE_NAMES], connection=redis
        ).work(burst=True, max_jobs=1)
    with in_app(world.app):
        sent = AutopayCharge.get_by_id(charge.id)
        order_id = sent.transaction.order_id
        autopay_id = sent.autopay_id
    figure(103, "checks run before the charge", queued_checks - checks.count, 0)
    assert charges.count == 0 and checks.count == queued_checks
    assert sent.tries == 1

    # The charge's order id names neither the autopay nor the period.
    guessed = f"R{autopay_id}-{re.sub(r'[^A-Za-z0-9]', '', sent.period)}-1"
    assert re.fullmatch(r"R[0-9a-f]{20}-1", order_id) and order_id != guessed
    with in_app(world.app):
        again = payments.recurrent_order_id(autopay_id, sent.period, 1)
    monkeypatch.setitem(world.app.config, "SECRET_KEY", "another key")
    with in_app(world.app):
        other_key = payments.recurrent_order_id(autopay_id, sent.period, 1)
    assert again == order_id != other_key


def test_103_one_subscriber_cannot_pile_up_open_orders(make_world, figure):
    world = make_world(app_settings={"OPEN_ORDERS_MAX": 5, "PAY_RATE_LIMIT": 8})
    session = requests.Session()
    session.post(f"{world.url}/login", data={"number": "1001", "password": "demo-pass"})
    answers = [
        session.post(f"{world.url}/pay", data={"amount": "100"}) for _ in range(20)
    ]
    with in_app(world.app):
        made = Transaction.select().where(Transaction.status == "new").count()
    codes = [a.status_code for a in answers]
    figure(103, "open orders one subscriber made of 20 tries", made, 5)
    assert made == 5 and codes[:5] == [200] * 5 and set(codes[5:]) == {429}
    # Five open orders first, then eight tries this minute: the reasons say which.
    assert "5 незавершённых оплат" in answers[5].text
    assert "Слишком много попыток оплаты" in answers[-1].text


def test_103_the_open_order_cap_holds_under_concurrent_posts(make_world, figure):
    world = make_world(app_settings={"OPEN_ORDERS_MAX": 5, "PAY_RATE_LIMIT": 0})
    session = requests.Session()
    session.post(f"{world.url}/login", data={"number": "1001", "password": "demo-pass"})
    codes = post_all(
        f"{world.url}/pay",
        [{"amount": "100"}] * 30,
        workers=10,
        cookies=session.cookies.get_dict(),
    )
    with in_app(world.app):
        made = Transaction.select().where(Transaction.status == "new").count()
    figure(103, "open orders made by 30 concurrent posts", made, 5)
    assert made == 5 and codes.count(200) == 5 and codes.count(429) == 25
