"""Write the receipt an order or a refund carries, in the unit that writes it."""

import logging

from .. import params as module_params
from ..clock import utcnow
from ..models import Receipt
from ..uniteller.client import RECEIPT_MAX
from . import receipts

log = logging.getLogger("cabinet.fiscal")


def profile_of(configuration):
    """The fiscal profile of a configuration, or None when it sends no receipts."""
    p = module_params.effective(configuration.params)
    return p if p["fiscal"] == "yes" else None


def issue_sale(transaction, contract, configuration):
    """Freeze a sale receipt for a new order; return its base64 text, or None.

    Call inside the unit that writes the order: the receipt is written with it
    and never rebuilt (Uniteller refuses an order id seen with another receipt).
    """
    profile = profile_of(configuration)
    if profile is None:
        return None
    receipt = receipts.build_sale(profile, contract, transaction.amount)
    return _write(transaction, None, "sale", receipt)


def issue_refund(transaction, refund_id, amount):
    """Freeze the refund receipt of a refund; None if its sale had no receipt.

    Made from the sale's receipt, so a refund of a sale fiscalized without a
    receipt (before the profile was switched on) goes without one, as it went.
    """
    sale = Receipt.of_sale(transaction.id)
    if sale is None:
        return None
    receipt = receipts.build_refund(sale.body, amount)
    return _write(transaction, refund_id, "refund", receipt)


def _write(transaction, refund_id, kind, receipt):
    body = receipts.encode(receipt)
    if len(body) > RECEIPT_MAX:
        raise ValueError("a receipt longer than Uniteller takes")  # cannot happen
    now = utcnow()
    Receipt.create(
        transaction=transaction.id,
        refund=refund_id,
        kind=kind,
        key=f"{kind}:{refund_id if kind == 'refund' else transaction.id}",
        body=body,
        total=receipt["total"].kopecks,
        contact=receipts.contact_text(receipt),
        created_at=now,
        updated_at=now,
    )
    return body
