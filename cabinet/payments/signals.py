"""What the payments core tells its listeners (autopay, and later billing, receipts)."""

from blinker import Namespace

_signals = Namespace()

# A transaction moved to another status by a report from Uniteller: sent inside
# the same write unit, after the money moved, so a listener's rows commit (or
# roll back) with the change. Arguments: the transaction (sender), `old` (its
# previous status) and `outcome` ("credited", "reversed" or "changed").
transaction_changed = _signals.signal("transaction-changed")

# A `canceled` status is about to take back what a transaction still holds: sent
# inside the same write unit, after the status was written and before the money
# moves. A listener may first book what it knows went back (a refund under way
# that this cancel settles), so the reversal takes only the rest and the billing
# hears of a refund, not a reversal. Arguments: the transaction (sender).
transaction_reversing = _signals.signal("transaction-reversing")

# A done refund was taken off the balance: sent inside the refund's write unit
# (book_refund), so a listener's rows commit with the ledger entry. Arguments:
# the transaction (sender), `refund_id` and `amount` (the kopecks taken, > 0).
refund_booked = _signals.signal("refund-booked")

# A new order (a payment, a binding, a recurrent try) was written: sent inside
# its write unit, before any request names it. A listener may freeze a document
# the order's requests carry (the fiscal receipt) and return its text; the pay
# form signs it in. Arguments: the transaction (sender), `contract` and
# `configuration`.
order_created = _signals.signal("order-created")


def attachment_of(transaction, contract, configuration):
    """Send order_created; return the one text a listener attached, or None."""
    given = [
        value
        for _, value in order_created.send(
            transaction, contract=contract, configuration=configuration
        )
        if value is not None
    ]
    return given[0] if given else None
