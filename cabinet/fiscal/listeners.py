"""Write receipts with the orders, and follow the orders' outcomes."""

from ..acquirer import is_fiscal
from ..models import Receipt
from ..payments import order_created, transaction_changed
from .documents import set_state
from .issuing import issue_sale

# Statuses after which a sale receipt is not due (unless the order is paid later).
UNPAID = ("failed", "expired")


@order_created.connect
def on_order_created(transaction, contract, configuration):
    """A new order of a fiscal configuration: its receipt commits with it."""
    return issue_sale(transaction, contract, configuration)


@transaction_changed.connect
def on_transaction_changed(transaction, old, outcome):
    """Keep a sale receipt's state in step with its order's money."""
    # The order's own configuration decides: no query for orders without receipts.
    if not is_fiscal(transaction.configuration):
        return
    receipt = Receipt.of_sale(transaction.id)
    if receipt is None:
        return
    if outcome == "credited":
        set_state(receipt.id, "pending")  # from void: a late payment after all
    elif outcome == "reversed" or transaction.status == "canceled":
        # Reversed with no receipt issued (credited first or not): Uniteller's
        # protection against the tax office's fines cancels a payment it could
        # not fiscalize (53), and a payer's own abandon is never "Canceled".
        set_state(
            receipt.id, "failed", note="the payment was reversed without a receipt"
        )
    elif transaction.status in UNPAID:
        set_state(receipt.id, "void")
