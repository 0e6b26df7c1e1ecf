"""Helpers shared by tests: signed callbacks, quick transactions."""

from cabinet import payments
from cabinet.models import Contract, LedgerEntry, Transaction, TransactionEvent
from cabinet.uniteller.signatures import callback_signature

CALLBACK_FIELDS = ["BillNumber", "ApprovalCode", "Total"]


def signed_callback(order_id, status, password, total=None, bill="123456789012",
                    approval="AB1234"):
    """Build callback fields signed as Uniteller signs them (default CallbackFields)."""
    fields = {"Order_ID": order_id, "Status": status, "BillNumber": bill,
              "ApprovalCode": approval, "Total": total or ""}
    fields["Signature"] = callback_signature(
        password, order_id, status, [fields[n] for n in CALLBACK_FIELDS])
    return fields


def new_payment(contract, amount=50000):
    """Create a `new` payment transaction for a contract."""
    transaction, _ = payments.start_payment(
        contract, amount, "http://cabinet.test/ok", "http://cabinet.test/no")
    return transaction


def balance(contract):
    """Read a contract's balance fresh from the database."""
    return Contract.get_by_id(contract.id).balance


def status(transaction):
    """Read a transaction's status fresh from the database."""
    return Transaction.get_by_id(transaction.id).status


def credits(transaction):
    """Count the credit entries of a transaction."""
    return LedgerEntry.select().where(
        LedgerEntry.transaction == transaction, LedgerEntry.kind == "credit").count()


def events(transaction, kind=None):
    """List the events of a transaction (optionally one kind)."""
    query = TransactionEvent.select().where(TransactionEvent.transaction == transaction)
    if kind:
        query = query.where(TransactionEvent.kind == kind)
    return list(query.order_by(TransactionEvent.id))
