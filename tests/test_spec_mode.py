"""The product against the sandbox's specification mode (Uniteller's virtual acquirer).

`make test` runs these once more with SANDBOX_MODE=spec (v1.43 §3.3: the test cards,
expiry 01/35, CVV 123, amounts from 10.00 to 100.00 roubles); in the default pass they
run against the demo mode, which accepts the same.
"""

import os
from datetime import timedelta

import pytest

from cabinet import autopay, refunds
from cabinet.models import AutopayCharge, Contract, Transaction
from tests.helpers import (
    DECLINE_CARD,
    bind_autopay,
    in_app,
    isp_today,
    moscow,
    pay_by_card,
)

pytestmark = pytest.mark.spec_mode


def test_the_sandbox_runs_in_the_mode_this_pass_asked_for(world):
    asked = os.environ.get("SANDBOX_MODE") or "demo"
    assert world.sandbox_app.config["SANDBOX_MODE"] == asked


def test_a_test_card_payment_is_credited(world):
    order_id, _, _ = pay_by_card(world, "50")
    world.settle()
    with in_app(world):
        transaction = Transaction.by_order_id(order_id)
        assert transaction.status == "paid" and transaction.bill_number
        assert Contract.by_number("1001").balance == 5000


def test_the_decline_card_is_declined(world):
    order_id, _, _ = pay_by_card(world, "50", DECLINE_CARD)
    world.settle()
    with in_app(world):
        refreshed = Transaction.by_order_id(order_id)
        assert refreshed.status in ("new", "failed")
        assert Contract.by_number("1001").balance == 0


def test_a_refund_of_a_test_payment(world):
    order_id, _, _ = pay_by_card(world, "50")
    world.settle()
    with in_app(world):
        made = refunds.start_refund(Transaction.by_order_id(order_id), 1000, None)
        assert made.status == "done"
        assert Contract.by_number("1001").balance == 4000


def test_an_autopay_charge_on_the_test_card(autopay_world, run_jobs):
    world = autopay_world
    bind_autopay(world, "monthly", "20", day=31)
    # The last day of a month 40 days on: a monthly "day 31" charge is due then.
    target = isp_today() + timedelta(days=40)
    last = (target.replace(day=28) + timedelta(days=4)).replace(day=1)
    with in_app(world):
        autopay.run(now=moscow(last - timedelta(days=1)))
    run_jobs(world.app)
    world.settle()
    with in_app(world):
        charges = [(c.status, c.amount) for c in AutopayCharge.select()]
        assert charges == [("succeeded", 2000)]
        assert Contract.by_number("1001").balance == 4000
