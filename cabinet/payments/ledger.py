"""The ledger: every move of a balance as one entry with a unique key, written once."""

from peewee import fn

from ..clock import utcnow
from ..models import Contract, LedgerEntry
from ..prepared import Prepared
from .signals import refund_booked


def ledger_balance(contract):
    """Sum a contract's ledger (always equal to its balance)."""
    return (
        LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0))
        .where(LedgerEntry.contract == contract)
        .scalar()
    )


def held_by(transaction):
    """Return what a transaction still holds on its contract's balance (kopecks)."""
    return int(
        LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0))
        .where(LedgerEntry.transaction == transaction)
        .scalar()
    )


def credit(transaction):
    """Credit a successful transaction's amount to its contract, once."""
    return _post(transaction, "credit", transaction.amount)


def reverse(transaction):
    """Take back what a transaction still holds on the balance, once."""
    held = held_by(transaction)
    if held <= 0:
        return False
    return _post(transaction, "reversal", -held)


def book_refund(transaction, refund_id, amount):
    """Take a done refund off the balance, once; return the kopecks taken.

    A `canceled` status may have been applied first (its callback can overtake
    the refund's answer) and reversed what was left: never take back more than
    the transaction still holds.
    """
    taken = min(amount, max(held_by(transaction), 0))
    if taken and _post(transaction, "refund", -taken, key=f"refund:{refund_id}"):
        # Listeners (billing, …) write in the refund's unit: their rows commit
        # with the entry.
        refund_booked.send(transaction, refund_id=refund_id, amount=taken)
    return taken


def _post(transaction, kind, amount, key=None):
    """Write one ledger entry and move the balance; False if its key exists already.

    Call inside a write unit. The key (default "<kind>:<order id>") makes the
    entry happen once, whoever tries it how often.
    """
    # ON CONFLICT DO NOTHING rather than catching IntegrityError in a savepoint:
    # the same guarantee, two statements fewer.
    inserted = _LEDGER_INSERT.execute(
        contract=transaction.contract_id,
        transaction=transaction.id,
        kind=kind,
        amount=amount,
        key=key or f"{kind}:{transaction.order_id}",
        created_at=utcnow(),
    )
    if not inserted:
        return False
    _BALANCE_MOVE.execute(amount=amount, id=transaction.contract_id)
    return True


_LEDGER_INSERT = Prepared(
    lambda slot: LedgerEntry.insert(
        {
            LedgerEntry.contract: slot("contract"),
            LedgerEntry.transaction: slot("transaction"),
            LedgerEntry.kind: slot("kind"),
            LedgerEntry.amount: slot("amount"),
            LedgerEntry.key: slot("key"),
            LedgerEntry.created_at: slot("created_at", LedgerEntry.created_at),
        }
    ).on_conflict(conflict_target=[LedgerEntry.key], action="NOTHING")
)
_BALANCE_MOVE = Prepared(
    lambda slot: Contract.update(balance=Contract.balance + slot("amount")).where(
        Contract.id == slot("id")
    )
)
