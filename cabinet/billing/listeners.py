"""Write a delivery row per connector when the payments core moves money."""

from ..payments import refund_booked, transaction_changed
from .outbox import record_deliveries

KIND_OF_OUTCOME = {"credited": "credit", "reversed": "reversal"}


@transaction_changed.connect
def on_transaction_changed(transaction, old, outcome):
    """A credit or a reversal: its deliveries commit with its ledger entry."""
    kind = KIND_OF_OUTCOME.get(outcome)
    if kind == "credit":
        record_deliveries(transaction, "credit", transaction.amount)
    elif kind == "reversal":
        # What the reversal took back: the credit less any refunds before it.
        record_deliveries(transaction, "reversal", None)


@refund_booked.connect
def on_refund_booked(transaction, refund_id, amount):
    """A done refund: its deliveries commit with its ledger entry."""
    record_deliveries(transaction, "refund", amount, refund_id=refund_id)
