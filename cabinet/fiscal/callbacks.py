"""Uniteller's fiscal notification: the status callback with the order's receipts."""

import logging

from .. import acquirer, payments
from ..errors import BadRequest, Forbidden
from ..models import ModuleInstance, Transaction
from .documents import UnreadableReceipts, decode_documents, record_documents

log = logging.getLogger("cabinet.fiscal")

RECEIPT_FIELDS = ("Receipt", "ReceiptSignature")


def is_fiscal_callback(pairs):
    """Tell whether a callback's (name, value) pairs carry receipts."""
    return any(str(name) == "Receipt" for name, _ in pairs)


def receive_fiscal_callback(instance_code, pairs):
    """Verify both signatures, apply the status as any callback, keep the receipts.

    ReceiptSignature = uppercase(sha256(Order_ID + Status + Receipt + password))
    (fiscal 02.1.18 §3.15); the Signature is the ordinary callback's, checked by
    the payments core (which accepts the fiscal fixed order of its fields). A
    repeated notification changes nothing twice: the status is applied by
    compare-and-set and each fiscalized receipt is kept once by its fiscal.id.
    """
    fields = payments.merge_fields(pairs)
    receipt = fields.pop("Receipt", None)
    given = fields.pop("ReceiptSignature", None)
    if not isinstance(receipt, str) or not isinstance(given, str):
        raise BadRequest("Receipt and ReceiptSignature are required")
    order_id, status = fields.get("Order_ID"), fields.get("Status")
    transaction = _order(instance_code, order_id)
    if transaction is not None and not acquirer.client_for(
        transaction.configuration
    ).check_receipt_signature(order_id, status, receipt, given):
        log.warning(
            "fiscal callback refused: bad ReceiptSignature order=%s",
            str(order_id)[:127],
            extra={"order_id": str(order_id)[:127]},
        )
        raise Forbidden("bad_signature")
    outcome = payments.receive_callback(instance_code, fields)
    if transaction is None:
        return outcome  # an orphan, kept as any (its receipts with nobody)
    try:
        documents = decode_documents(receipt)
    except UnreadableReceipts as exc:
        log.warning(
            "fiscal callback: receipts unreadable (%s) order=%s",
            exc,
            transaction.order_id,
            extra={"order_id": transaction.order_id},
        )
        return outcome
    record_documents(transaction, documents, "callback")
    return outcome


def _order(instance_code, order_id):
    instance = ModuleInstance.by_code(instance_code)
    if instance is None or not isinstance(order_id, str):
        return None
    transaction = Transaction.by_order_id(order_id)
    if transaction is None or transaction.instance_id != instance.id:
        return None
    return transaction
