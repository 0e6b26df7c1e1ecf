"""Scenario 21: billing deliveries under concurrency and a killed worker."""

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cabinet import billing
from tests.fault.tools import WATCH, callback, open_orders, post_all, scaled
from tests.helpers import billing_deliveries, in_app, make_deliveries_due, redis_url

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]


def test_21_many_concurrent_credits_are_each_delivered_once(osmp_world, shop, figure):
    world = osmp_world
    orders = [order_id for order_id, _ in open_orders(world, scaled(200, 10))]
    answers = post_all(
        f"{world.url}/uniteller/isp/notify",
        [callback(shop, order_id, "paid") for order_id in orders],
    )
    assert answers.count(200) == len(orders)
    ids = [d.id for d in billing_deliveries(world)]
    assert len(ids) == len(orders)

    def deliver(delivery_id):
        with in_app(world.app):
            return billing.deliver(delivery_id)

    # Every delivery's job twice at once, as RQ may run a job and the sweep's.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(deliver, ids + ids))
    sent = [r for r in world.billing.books.state()["requests"] if r[1] == "pay"]
    figure(21, "deliveries sent twice", len(sent) - len(ids), 0)
    paid = world.billing.paid()
    assert len(paid) == len(orders) and len(sent) == len(ids)
    assert {d.state for d in billing_deliveries(world)} == {"done"}


def deliver_in_a_process(world, database_url, redis, tmp_path, delivery_id, kill_at):
    """Run the deliver job in a process of its own that dies where told."""
    env = {
        **os.environ,
        "TESTING": "1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url(redis),
        "SECRET_KEY": world.app.config["SECRET_KEY"],
        "PUBLIC_URL": world.url,
        "INSTANCE_DIR": str(tmp_path),
        "CABINET_KILL_AT": kill_at,
    }
    log = tmp_path / "deliver.log"
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from cabinet import jobs; jobs.deliver_billing({delivery_id})",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        timeout=120,
    )
    WATCH.log("deliver job", log.read_text(errors="replace"))
    return process.returncode


def test_21_a_worker_killed_between_answer_and_record_resends_the_same_txn_id(
    osmp_world, shop, database_url, redis, tmp_path, run_jobs, figure
):
    world = osmp_world
    ((order_id, _),) = open_orders(world, 1)
    post_all(f"{world.url}/uniteller/isp/notify", [callback(shop, order_id, "paid")])
    (delivery,) = billing_deliveries(world)
    code = deliver_in_a_process(
        world, database_url, redis, tmp_path, delivery.id, "billing_after_answer"
    )
    assert code == -signal.SIGKILL
    (delivery,) = billing_deliveries(world)
    assert delivery.state == "sending"  # the billing paid; we never recorded it
    assert len(world.billing.paid()) == 1
    make_deliveries_due(world)  # the claim's lease runs out
    with in_app(world.app):
        assert billing.sweep().looked_at == 1
    run_jobs(world.app)
    (delivery,) = billing_deliveries(world)
    (paid,) = world.billing.paid()
    assert delivery.state == "done" and delivery.prv_txn == paid["prv_txn"]
    pays = [r for r in world.billing.books.state()["requests"] if r[1] == "pay"]
    assert [r[2] for r in pays] == [delivery.txn_id, delivery.txn_id]
    counted = len(world.billing.paid())
    figure(21, "payments the billing counted after a kill", counted, 1)
