"""What autopay does when the payments core reports a change (same write unit)."""

from ..payments import transaction_changed
from .charging import settle_try
from .setup import bind_succeeded


@transaction_changed.connect
def on_transaction_changed(transaction, old, outcome):
    """Bind an autopay on its binding payment's credit; settle a recurrent try."""
    if transaction.kind == "bind" and outcome == "credited":
        bind_succeeded(transaction)
    elif transaction.kind == "recurrent":
        settle_try(transaction)
