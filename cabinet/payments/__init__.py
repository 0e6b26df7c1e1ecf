"""The payments core: transactions, their states, the ledger and the balance.

The only code that changes a transaction's status or a balance. It knows nothing
of autopay, jobs, billing deliveries, receipts or the web: those call its entry
points or listen to `transaction_changed`.
"""

from .callbacks import merge_fields, receive_callback
from .history import record_event
from .ledger import book_refund, ledger_balance
from .orders import (
    create_recurrent,
    new_order_id,
    recurrent_order_id,
    start_payment,
    transaction_of,
)
from .signals import (
    order_created,
    refund_booked,
    transaction_changed,
    transaction_reversing,
)
from .states import CHECKED_STATUSES, TRANSITIONS
from .status import (
    Outcome,
    apply_status,
    clear_review,
    expire_unseen,
    flag_for_review,
)

__all__ = [
    "CHECKED_STATUSES",
    "TRANSITIONS",
    "Outcome",
    "apply_status",
    "book_refund",
    "create_recurrent",
    "expire_unseen",
    "clear_review",
    "flag_for_review",
    "ledger_balance",
    "merge_fields",
    "new_order_id",
    "order_created",
    "receive_callback",
    "recurrent_order_id",
    "record_event",
    "refund_booked",
    "start_payment",
    "transaction_changed",
    "transaction_reversing",
    "transaction_of",
]
