"""Autopay charges and refunds with 54-FZ receipts, and the receipt check.

Against a small fake of Uniteller's fiscal endpoints served live (the
`fiscal_shop` fixture) until the sandbox serves /v2/*.
"""

from datetime import timedelta

import pytest

from cabinet import accounts, autopay, fiscal, payments, refunds
from cabinet.clock import local_today, utcnow
from cabinet.fiscal import recheck
from cabinet.models import (
    Autopay,
    AutopayCharge,
    Contract,
    FiscalDocument,
    Notice,
    Receipt,
    Transaction,
)
from cabinet.money import format_wire
from tests.helpers import ADMIN, console_login, in_app, new_payment


def paid(contract, amount=50000):
    """A card payment of a contract, paid (its sale receipt frozen, no document yet)."""
    transaction = new_payment(contract, amount)
    payments.apply_status(
        transaction.order_id,
        "Paid",
        source="status",
        fields={"BillNumber": "900000000001", "Total": format_wire(amount)},
        instance=transaction.instance,
    )
    return Transaction.get_by_id(transaction.id)


def due_charge(contract, parent, amount=30000):
    """An active autopay on `parent`'s card with one charge due today."""
    now = utcnow()
    active = Autopay.create(
        contract=contract,
        mode="weekly",
        weekday=0,
        amount=amount,
        state="active",
        parent=parent,
        active_since=now,
    )
    return AutopayCharge.create(
        autopay=active, period="req:1", due_on=local_today(), amount=amount
    )


def receipts_of(transaction, kind):
    return list(
        Receipt.select().where(
            Receipt.transaction == transaction.id, Receipt.kind == kind
        )
    )


@pytest.fixture
def charged(fiscal_shop):
    """Run one autopay try of contract 1001 against the fake; (app, fake, charge)."""
    app, fake = fiscal_shop

    def run(mode="ok"):
        fake.recurrent = mode
        with in_app(app):
            contract = Contract.get(Contract.number == "1001")
            charge = due_charge(contract, paid(contract))
            autopay.charge(charge.id)
            return AutopayCharge.get_by_id(charge.id)

    return app, fake, run


def test_a_charge_goes_with_its_frozen_receipt_and_keeps_the_one_issued(charged):
    app, fake, run = charged
    charge = run()
    with in_app(app):
        charge = AutopayCharge.get_by_id(charge.id)
        transaction = charge.transaction
        assert (charge.status, transaction.status) == ("succeeded", "paid")
        (receipt,) = receipts_of(transaction, "sale")
        (sent,) = fake.sent("/v2/recurrent")
        assert sent["Receipt"] == receipt.body and sent["ReceiptSignature"]
        assert receipt.state == "issued"
        (document,) = receipt.documents
        assert (document.doc_type, document.total, document.source) == (
            0,
            30000,
            "answer",
        )


def test_error_53_fails_the_try_and_its_receipt_and_retries_another_day(charged):
    app, fake, run = charged
    charge = run("53")
    with in_app(app):
        assert charge.status == "retry"
        assert charge.next_try_on > local_today()  # never again the same day
        assert charge.transaction.status == "failed"
        (receipt,) = receipts_of(charge.transaction, "sale")
        assert receipt.state == "failed" and receipt.note.startswith("53")
    assert len(fake.sent("/v2/recurrent")) == 1


def test_error_54_credits_the_try_and_puts_its_receipt_on_the_missing_list(charged):
    app, fake, run = charged
    charge = run("54")
    with in_app(app):
        assert charge.status == autopay.states.UNKNOWN  # the money may be taken
        (receipt,) = receipts_of(charge.transaction, "sale")
        assert receipt.state == "missing"
        # /results/ says paid: the try ends credited, the receipt still missing.
        assert autopay.resolve(charge.id) == "succeeded"
        assert Transaction.get_by_id(charge.transaction_id).status == "paid"
        assert Receipt.get_by_id(receipt.id).state == "missing"
    assert len(fake.sent("/v2/recurrent")) == 1


def test_a_contract_without_contact_cancels_the_charge_and_tells_why(fiscal_shop):
    app, fake = fiscal_shop
    with in_app(app):
        contract = Contract.get(Contract.number == "1002")
        # Its card was bound before the profile was switched on: no receipt.
        now = utcnow()
        parent = Transaction.create(
            order_id="P-old-1002",
            contract=contract,
            instance=contract.instance_id,
            configuration=contract.instance.active_configuration(),
            kind="bind",
            amount=10000,
            status="paid",
            created_at=now,
            updated_at=now,
        )
        charge = due_charge(contract, parent)
        assert autopay.charge(charge.id) is None
        assert autopay.charge(charge.id) is None  # and stays so: no loop
        charge = AutopayCharge.get_by_id(charge.id)
        assert charge.status == "canceled" and "e-mail" in charge.result_message
        assert charge.transaction_id is None
        assert not Transaction.select().where(Transaction.kind == "recurrent").count()
        assert Notice.get(Notice.contract == contract).kind == "contact_required"
    assert fake.sent("/v2/recurrent") == []


@pytest.fixture
def refund_of(fiscal_shop):
    """Refund part or all of a paid 500 ₽ payment; (app, fake, refund)."""
    app, fake = fiscal_shop

    def run(amount=None, mode="ok"):
        fake.cancel = mode
        with in_app(app):
            transaction = paid(Contract.get(Contract.number == "1001"))
            return refunds.start_refund(transaction, amount, None)

    return app, fake, run


def refund_receipt(made):
    (receipt,) = Receipt.select().where(Receipt.refund == made.id)
    return receipt


@pytest.mark.parametrize(("amount", "subtotal"), [(None, None), (20000, "200.00")])
def test_a_refund_carries_one_receipt_of_the_sale_s_terms(refund_of, amount, subtotal):
    app, fake, run = refund_of
    made = run(amount)
    with in_app(app):
        assert made.status == "done"
        transaction = made.transaction
        (sale,) = receipts_of(transaction, "sale")
        (receipt,) = receipts_of(transaction, "refund")
        (sent,) = fake.sent("/v2/cancel")
        assert sent["Receipt"] == receipt.body
        assert sent.get("Subtotal") == subtotal  # none for a full refund (§3.14)
        body, sold = fiscal.decode(receipt.body), fiscal.decode(sale.body)
        (line,), (sold_line,) = body["lines"], sold["lines"]
        assert (line["payattr"], line["vat"]) == (
            sold_line["payattr"],
            sold_line["vat"],
        )
        assert body["total"] == line["sum"] == made.amount / 100
        assert receipt.state == "issued" and receipt.total == made.amount
        expected = "canceled" if amount is None else "paid"
        assert Transaction.get_by_id(transaction.id).status == expected
    assert fake.sent("/unblock/") == []


def test_error_50_refunds_nothing_and_fails_the_receipt(refund_of):
    app, fake, run = refund_of
    made = run(20000, "50")
    with in_app(app):
        assert (made.status, made.error_code) == ("failed", "50")
        assert refund_receipt(made).state == "failed"
        assert refunds.refunded(made.transaction) == 0
        assert Transaction.get_by_id(made.transaction_id).status == "paid"


def test_error_51_fails_the_refund_and_keeps_its_corrections(refund_of):
    app, fake, run = refund_of
    made = run(20000, "51")
    with in_app(app):
        assert (made.status, made.error_code) == ("failed", "51")
        receipt = refund_receipt(made)
        kinds = sorted(d.doc_type for d in receipt.documents)
        assert kinds == [1, 2]  # the refund receipt and the correction undoing it
        assert "correction" in receipt.note
        assert refunds.refunded(made.transaction) == 0


def test_the_receipt_check_fills_a_gap_from_v2_results(fiscal_shop):
    app, fake = fiscal_shop
    with in_app(app):
        transaction = paid(Contract.get(Contract.number == "1001"))
        (receipt,) = receipts_of(transaction, "sale")
        assert receipt.state == "pending"  # its fiscal callback was lost
        fake.rows[transaction.order_id] = {
            "Status": "Paid",
            "Total": "500.00",
            "Receipt": fake.encode([fake.document(0, "500.00")]),
        }
        stats = recheck.run(now=utcnow() + timedelta(minutes=2))
        assert stats.changed == 1 and stats.errors == 0
        assert Receipt.get_by_id(receipt.id).state == "issued"
        (asked,) = fake.sent("/v2/results")
        fields = asked["S_FIELDS"].split(";")
        assert fields[-2:] == ["Receipt", "Message"]
        # Asked again (the console's re-check): the same document, kept once.
        assert fiscal.recheck_receipts(transaction.id).changed == 0
        assert FiscalDocument.select().count() == 1


def test_a_receipt_still_absent_after_the_wait_goes_missing(fiscal_shop):
    app, fake = fiscal_shop
    with in_app(app):
        transaction = paid(Contract.get(Contract.number == "1001"))
        fake.rows[transaction.order_id] = {"Status": "Paid", "Total": "500.00"}
        (receipt,) = receipts_of(transaction, "sale")
        soon = utcnow() + timedelta(minutes=29)
        assert fiscal.recheck_receipts(transaction.id, now=soon).changed == 0
        assert Receipt.get_by_id(receipt.id).state == "pending"
        later = utcnow() + timedelta(minutes=31)  # RECEIPT_MISSING_MINUTES: 30
        assert fiscal.recheck_receipts(transaction.id, now=later).changed == 1
        assert Receipt.get_by_id(receipt.id).state == "missing"


def test_the_console_says_what_error_51_did(fiscal_shop):
    app, fake = fiscal_shop
    fake.cancel = "51"
    with in_app(app):
        accounts.add_operator(*ADMIN, admin=True)
        order_id = paid(Contract.get(Contract.number == "1001")).order_id
    client = app.test_client()
    console_login(client)
    page = client.post(
        f"/console/transactions/{order_id}/refund",
        data={"amount": "200"},
        follow_redirects=True,
    )
    text = page.get_data(as_text=True)
    assert (
        "чеки коррекции" in text and "(ошибка 51)" in text
    )  # the console is in Russian


def test_a_refund_whose_answer_was_lost_is_settled_by_the_check_not_resent(
    refund_of,
):
    app, fake, run = refund_of
    made = run(20000, "lost")
    with in_app(app):
        assert made.status == "pending"  # the refund may have been made
        fake.rows[made.transaction.order_id]["Total"] = "500.00"
        stats = refunds.recheck_pending(now=utcnow() + timedelta(minutes=2))
        assert stats.errors == 0
        made = refunds.Refund.get_by_id(made.id)
        assert made.status == "done"
        assert refund_receipt(made).state == "issued"  # from /v2/results' Receipt
    assert len(fake.sent("/v2/cancel")) == 1
    (asked,) = fake.sent("/v2/results")
    assert asked["PaymentsResults"] == "3"
