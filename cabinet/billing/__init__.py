"""Deliver every credit, reversal and refund to the ISP's billing (the outbox).

Listens to the payments core (`transaction_changed`, `refund_booked`): each
delivery row is written in the unit that moved the money, then sent after
commit by the `deliver_billing` job, and found again by the `billing-sweep`
task if no job sent it. Connectors: `osmp` (the QIWI provider protocol most
ISP billings accept) and `webhook` (Standard Webhooks).
"""

from . import listeners  # noqa: F401  (connects the payments listeners)
from .connectors import (
    KINDS,
    ConnectorError,
    add_connector,
    connectors_of,
    get_connector,
    shown_params,
    test_connector,
    update_connector,
)
from .outbox import (
    attempts_of,
    attention,
    connector_figures,
    deliver,
    deliveries,
    delivery_counts,
    dispatch,
    mark_done,
    readdress,
    retry,
    sweep,
)
from .states import DELIVERY_TRANSITIONS, NEEDS_ATTENTION

__all__ = [
    "DELIVERY_TRANSITIONS",
    "KINDS",
    "NEEDS_ATTENTION",
    "ConnectorError",
    "add_connector",
    "attempts_of",
    "attention",
    "connector_figures",
    "connectors_of",
    "deliver",
    "dispatch",
    "deliveries",
    "delivery_counts",
    "get_connector",
    "mark_done",
    "readdress",
    "retry",
    "shown_params",
    "sweep",
    "test_connector",
    "update_connector",
]
