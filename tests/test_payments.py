"""The payment service: one path decides what a status means and credits once."""

import pytest

from cabinet import accounts, acquirer, configurations, payments
from cabinet.errors import AmountOutOfRange, PaymentUnavailable
from cabinet.models import TransactionEvent
from tests.helpers import balance, credits, events, new_payment, status


def test_start_payment_creates_a_new_order_and_a_signed_form(demo, shop):
    transaction, form = payments.start_payment(
        demo["contract"], 50000, "http://cabinet.test/ok", "http://cabinet.test/no"
    )
    assert transaction.status == "new" and transaction.amount == 50000
    assert form.action == "http://gateway.test/pay/"
    assert form.fields["Order_IDP"] == transaction.order_id
    assert form.fields["Subtotal_P"] == "500.00"
    assert form.fields["Customer_IDP"] == "1001"
    assert form.fields["Email"] == "ivanov@example.com"
    assert form.fields["URL_RETURN_OK"] == "http://cabinet.test/ok"
    assert shop["password"] not in str(form.fields)


def test_amounts_outside_the_configuration_limits_are_refused(demo):
    for amount in (999, 1500001):
        with pytest.raises(AmountOutOfRange):
            payments.start_payment(demo["contract"], amount, "u", "u")
    assert demo["contract"].transactions.count() == 0


def test_payment_unavailable_without_instance_or_active_configuration(demo):
    lonely = accounts.add_contract("2001", "Без модуля", "pass1")
    with pytest.raises(PaymentUnavailable, match="not_linked"):
        acquirer.payment_gateway(lonely)
    bare = configurations.add_instance("bare")
    configurations.add_configuration(bare, "draft", ["shop_id=1"])
    linked = accounts.add_contract("2002", "Без конфигурации", "pass1", instance=bare)
    with pytest.raises(PaymentUnavailable, match="no_active_configuration"):
        acquirer.payment_gateway(linked)


@pytest.mark.parametrize(
    "first, second",
    [
        ("authorized", "paid"),
        ("paid", "authorized"),
        ("paid", "paid"),
        ("Paid", "paid"),
        ("authorized", "authorized"),
    ],
)
def test_authorized_or_paid_credit_once(demo, first, second):
    transaction = new_payment(demo["contract"])
    payments.apply_status(transaction.order_id, first, source="callback")
    payments.apply_status(transaction.order_id, second, source="callback")
    assert credits(transaction) == 1
    assert balance(demo["contract"]) == 50000
    expected = "paid" if "paid" in (first.lower(), second) else "authorized"
    assert status(transaction) == expected
    assert payments.ledger_balance(demo["contract"]) == 50000


def test_cancel_after_credit_writes_the_reversal_once(demo):
    transaction = new_payment(demo["contract"])
    payments.apply_status(transaction.order_id, "paid", source="callback")
    assert (
        payments.apply_status(
            transaction.order_id, "cancelled", source="callback"
        ).result
        == "reversed"
    )
    assert (
        payments.apply_status(
            transaction.order_id, "canceled", source="callback"
        ).result
        == "duplicate"
    )
    assert status(transaction) == "canceled"
    assert balance(demo["contract"]) == 0
    assert payments.ledger_balance(demo["contract"]) == 0


def test_paid_after_canceled_is_recorded_as_illegal_and_changes_nothing(demo):
    transaction = new_payment(demo["contract"])
    payments.apply_status(transaction.order_id, "paid", source="callback")
    payments.apply_status(transaction.order_id, "canceled", source="callback")
    outcome = payments.apply_status(transaction.order_id, "paid", source="callback")
    assert outcome.result == "illegal"
    assert status(transaction) == "canceled" and balance(demo["contract"]) == 0
    assert events(transaction, "illegal")


def test_failed_then_paid_credits(demo):
    """A failed order id may be paid on a second try (Uniteller allows it)."""
    transaction = new_payment(demo["contract"])
    payments.apply_status(
        transaction.order_id,
        "Not Authorized",
        source="status",
        fields={"Response_Code": "AS100", "Message": "Declined"},
    )
    assert status(transaction) == "failed"
    payments.apply_status(transaction.order_id, "paid", source="callback")
    assert status(transaction) == "paid" and balance(demo["contract"]) == 50000


def test_total_differing_from_our_amount_is_flagged_not_credited(demo):
    transaction = new_payment(demo["contract"])
    outcome = payments.apply_status(
        transaction.order_id, "paid", source="callback", fields={"Total": "5.00"}
    )
    assert outcome.result == "review"
    fresh = type(transaction).get_by_id(transaction.id)
    assert fresh.needs_review and fresh.status == "new"
    assert balance(demo["contract"]) == 0


def test_matching_total_and_bill_number_are_kept(demo):
    transaction = new_payment(demo["contract"])
    payments.apply_status(
        transaction.order_id,
        "paid",
        source="callback",
        fields={
            "Total": "500.00",
            "BillNumber": "123456789012",
            "ApprovalCode": "AB1234",
            "CardNumber": "400000******2487",
            "Password": "leak",
        },
    )
    fresh = type(transaction).get_by_id(transaction.id)
    assert (fresh.bill_number, fresh.approval_code) == ("123456789012", "AB1234")
    stored = str([e.fields for e in events(transaction)])
    assert "2487" not in stored and "leak" not in stored


def test_unknown_order_is_kept_as_an_orphan(demo):
    outcome = payments.apply_status(
        "NOPE-1", "paid", source="callback", instance=demo["instance"]
    )
    assert outcome.result == "orphan"
    orphan = TransactionEvent.get(TransactionEvent.order_id == "NOPE-1")
    assert orphan.kind == "orphan" and orphan.transaction is None


def test_unknown_status_word_changes_nothing(demo):
    transaction = new_payment(demo["contract"])
    assert (
        payments.apply_status(
            transaction.order_id, "teleported", source="callback"
        ).result
        == "ignored"
    )
    assert status(transaction) == "new"
