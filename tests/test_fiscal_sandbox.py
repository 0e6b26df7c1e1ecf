"""54-FZ receipts end to end: the cabinet and the live sandbox as Uniteller.

A payment, an autopay charge, a full and a partial refund each end with exactly
one fiscalized receipt; the sandbox's knobs make Uniteller's 53, 54, 50 and 51.
"""

from datetime import timedelta

import pytest

from cabinet import refunds
from cabinet.clock import utcnow
from cabinet.fiscal import recheck
from cabinet.models import (
    AutopayCharge,
    Contract,
    FiscalDocument,
    Receipt,
    Refund,
    Transaction,
)
from tests.helpers import (
    ALL_MODES,
    bind_autopay,
    daily_run,
    in_app,
    isp_today,
    next_weekday,
    pay_by_card,
)


@pytest.fixture
def fiscal_world(make_world):
    """The live pair with the fiscal profile on: the sandbox fiscalizes."""
    return make_world(fiscal=True, config=ALL_MODES)


def documents_of(transaction):
    """The fiscalized receipts kept for a transaction, as (type, total) pairs."""
    rows = FiscalDocument.select().where(FiscalDocument.transaction == transaction.id)
    return sorted((d.doc_type, d.total) for d in rows)


def paid_by_card(world, amount="500"):
    """A card payment through the sandbox's page, settled; its transaction."""
    order_id, _, _ = pay_by_card(world, amount)
    world.settle()
    with in_app(world):
        return Transaction.by_order_id(order_id)


def charged(world, run_jobs):
    """Bind weekly autopay of 300 ₽, then run its due day; the one charge."""
    bind_autopay(world, "weekly", "300", weekday=2)
    daily_run(world, next_weekday(2), run_jobs)
    with in_app(world):
        (charge,) = AutopayCharge.select()
        return charge


def test_a_card_payment_gets_exactly_one_fiscalized_receipt(fiscal_world):
    transaction = paid_by_card(fiscal_world)
    with in_app(fiscal_world):
        transaction = Transaction.get_by_id(transaction.id)
        assert (transaction.status, transaction.contract.balance) == ("paid", 50000)
        receipt = Receipt.of_sale(transaction.id)
        assert receipt.state == "issued"
        assert documents_of(transaction) == [(0, 50000)]
        (document,) = receipt.documents
        assert document.fiscal_link.startswith(fiscal_world.sandbox_url)


def test_a_duplicated_fiscal_notification_keeps_one_receipt(fiscal_world):
    fiscal_world.faults(duplicate_callbacks=3)
    transaction = paid_by_card(fiscal_world)
    with in_app(fiscal_world):
        assert Contract.by_number("1001").balance == 50000  # credited once
        assert documents_of(transaction) == [(0, 50000)]
        assert Receipt.select().count() == 1


def test_an_autopay_charge_goes_with_its_own_receipt(fiscal_world, run_jobs):
    charge = charged(fiscal_world, run_jobs)
    with in_app(fiscal_world):
        charge = AutopayCharge.get_by_id(charge.id)
        assert charge.status == "succeeded"
        assert Contract.by_number("1001").balance == 60000  # binding + charge
        assert Receipt.of_sale(charge.transaction_id).state == "issued"
        assert documents_of(charge.transaction) == [(0, 30000)]
        parent = charge.autopay.parent  # the binding payment: a receipt of its own
        assert documents_of(parent) == [(0, 30000)]


def test_error_53_on_a_charge_is_a_failed_try_without_money(fiscal_world, run_jobs):
    world = fiscal_world
    weekday = (isp_today().weekday() + 3) % 7  # never today: only the retry can be
    bind_autopay(world, "weekly", "300", weekday=weekday)
    world.faults(fail_sale_receipts=1)  # the shop has fiscal_protection
    daily_run(world, next_weekday(weekday), run_jobs)
    with in_app(world):
        (charge,) = AutopayCharge.select()
        # The try ran today (the worker's day): the next one is another day.
        assert charge.status == "retry" and charge.next_try_on > isp_today()
        assert charge.transaction.status == "failed"
        receipt = Receipt.of_sale(charge.transaction_id)
        assert receipt.state == "failed" and receipt.note.startswith("53")
        assert documents_of(charge.transaction) == []
        assert Contract.by_number("1001").balance == 30000  # the binding only
    daily_run(world, isp_today(), run_jobs)  # today's run again: no second try
    with in_app(world):
        assert Transaction.select().where(Transaction.kind == "recurrent").count() == 1


def test_error_54_credits_the_charge_and_lists_it_as_paid_without_receipt(
    fiscal_world, run_jobs
):
    world = fiscal_world
    bind_autopay(world, "weekly", "300", weekday=2)
    world.faults(fail_sale_receipts_kept=1)
    daily_run(world, next_weekday(2), run_jobs)
    with in_app(world):
        (charge,) = AutopayCharge.select()
        assert charge.status == "succeeded"
        assert Transaction.get_by_id(charge.transaction_id).status == "paid"
        assert Contract.by_number("1001").balance == 60000
        assert Receipt.of_sale(charge.transaction_id).state == "missing"
        assert documents_of(charge.transaction) == []


@pytest.mark.parametrize(
    ("amount", "status"), [(None, "canceled"), (20000, "paid")], ids=["full", "part"]
)
def test_a_refund_gets_exactly_one_refund_receipt(fiscal_world, amount, status):
    transaction = paid_by_card(fiscal_world)
    with in_app(fiscal_world):
        made = refunds.start_refund(transaction, amount, None)
        assert made.status == "done"
    fiscal_world.settle()  # its fiscal notification comes too
    with in_app(fiscal_world):
        assert Transaction.get_by_id(transaction.id).status == status
        refunded = made.amount
        assert refunded == (amount or 50000)
        assert Receipt.of_refund(made.id).state == "issued"
        assert documents_of(transaction) == sorted([(0, 50000), (1, refunded)])
        assert Contract.by_number("1001").balance == 50000 - refunded


def test_error_50_refunds_nothing(fiscal_world):
    transaction = paid_by_card(fiscal_world)
    fiscal_world.faults(fail_refund_receipts=1)
    with in_app(fiscal_world):
        made = refunds.start_refund(transaction, 20000, None)
        assert (made.status, made.error_code) == ("failed", "50")
        assert Receipt.of_refund(made.id).state == "failed"
        assert documents_of(transaction) == [(0, 50000)]
        assert Contract.by_number("1001").balance == 50000
    # Nothing was refunded, so the same amount can be refunded again.
    with in_app(fiscal_world):
        again = refunds.start_refund(transaction, 20000, None)
        assert again.status == "done"


def test_error_51_refunds_nothing_and_keeps_the_correction(fiscal_world):
    transaction = paid_by_card(fiscal_world)
    fiscal_world.faults(fail_refunds_after_receipt=1)
    with in_app(fiscal_world):
        made = refunds.start_refund(transaction, 20000, None)
        assert (made.status, made.error_code) == ("failed", "51")
        assert "correction" in Receipt.of_refund(made.id).note
        # The refund receipt and the correction that undoes it.
        assert documents_of(transaction) == [(0, 50000), (1, 20000), (2, 20000)]
        assert refunds.refunded(Transaction.get_by_id(transaction.id)) == 0
        assert Refund.select().where(Refund.status == "done").count() == 0
        assert Contract.by_number("1001").balance == 50000


def test_a_card_payment_whose_receipt_fails_is_reversed_and_credits_nothing(
    fiscal_world, run_jobs
):
    fiscal_world.faults(fail_sale_receipts=1)  # fiscal_protection: reversed (53)
    transaction = paid_by_card(fiscal_world)
    run_jobs(fiscal_world.app)  # the status check the return page asked for
    with in_app(fiscal_world):
        transaction = Transaction.get_by_id(transaction.id)
        assert transaction.status == "canceled"
        assert Contract.by_number("1001").balance == 0
        # Not "pending" for ever, nor "missing" as if paid: the operators' list
        # of failed receipts says why this payment was turned back.
        receipt = Receipt.of_sale(transaction.id)
        assert receipt.state == "failed" and "reversed" in receipt.note
        assert documents_of(transaction) == []


def test_a_card_payment_kept_without_receipt_goes_on_the_missing_list(fiscal_world):
    fiscal_world.faults(fail_sale_receipts_kept=1)  # 54: paid, no receipt
    transaction = paid_by_card(fiscal_world)
    with in_app(fiscal_world):
        assert Contract.by_number("1001").balance == 50000
        receipt = Receipt.of_sale(transaction.id)
        assert receipt.state == "pending"  # a fiscal notification may be late
        # The receipt check asks /v2/results; after the wait it is missing.
        stats = recheck.run(now=utcnow() + timedelta(minutes=31))
        assert (stats.changed, stats.errors) == (1, 0)
        assert Receipt.get_by_id(receipt.id).state == "missing"
        assert documents_of(transaction) == []
