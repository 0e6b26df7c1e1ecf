"""Fill receipt gaps from /v2/results; call a receipt missing once its wait is over."""

import logging
from datetime import timedelta

from flask import current_app

from .. import acquirer
from ..clock import utcnow
from ..models import CREDITED_STATUSES, Receipt, Refund, Transaction
from ..task_stats import TaskStats
from ..uniteller.client import RESULT_FIELDS, RateLimited, UnitellerError
from .documents import UnreadableReceipts, decode_documents, record_documents, set_state

log = logging.getLogger("cabinet.fiscal")

# /v2/results' own field (fiscal §3.16) before the free text: Receipt is base64
# (no ";"), and Message stays last where a ";" inside it can only lengthen a row.
RECEIPT_RESULT_FIELDS = (
    *(name for name in RESULT_FIELDS if name != "Message"),
    "Receipt",
    "Message",
)
# The orders one run of the receipt check asks about, oldest receipt first, and
# how old a receipt is before it is asked about (its callback usually comes first).
RECHECK_BATCH = 20
RECHECK_AFTER = timedelta(minutes=1)


def missing_after():
    """How long after its money moved a receipt still absent is called missing."""
    return timedelta(minutes=current_app.config["RECEIPT_MISSING_MINUTES"])


def record_rows(transaction, rows):
    """Keep the fiscalized receipts the order's /v2/results rows carry; count new."""
    added = 0
    for row in rows:
        if row.get("OrderNumber") != transaction.order_id or not row.get("Receipt"):
            continue
        try:
            documents = decode_documents(row["Receipt"])
        except UnreadableReceipts as exc:
            log.warning(
                "/v2/results: receipts unreadable (%s) order=%s",
                exc,
                transaction.order_id,
                extra={"order_id": transaction.order_id},
            )
            continue
        added += record_documents(transaction, documents, "results")
    return added


def _due(transaction):
    """The receipts of a transaction still waiting for their fiscalized document."""
    receipts = []
    for receipt in Receipt.select().where(
        Receipt.transaction == transaction.id, Receipt.state == "pending"
    ):
        if receipt.kind == "sale" and transaction.status in CREDITED_STATUSES:
            receipts.append(receipt)
        elif receipt.kind == "refund" and receipt.refund_id is not None:
            # A refund still pending is its own re-check's; a done one owes a receipt.
            if Refund.get_by_id(receipt.refund_id).status == "done":
                receipts.append(receipt)
    return receipts


def _check(transaction, stats, now):
    """Ask /v2/results about one order, keep its receipts, mark the overdue missing."""
    stats.looked_at += 1
    configuration = transaction.configuration
    rows = acquirer.ask_results(
        acquirer.client_for(configuration),
        acquirer.results_spacing(configuration),
        stats,
        order_id=transaction.order_id,
        fields=RECEIPT_RESULT_FIELDS,
        fiscal=True,
    )
    stats.changed += record_rows(transaction, rows)
    for receipt in _due(transaction):
        # Counted from when the money moved: the receipt was frozen with its order
        # (or refund), which may have been paid much later than it was written.
        moved_at = transaction.updated_at
        if receipt.kind == "refund":
            moved_at = Refund.get_by_id(receipt.refund_id).updated_at
        if now - max(moved_at, receipt.created_at) >= missing_after():
            note = "no fiscalized receipt from Uniteller after the wait"
            if set_state(receipt.id, "missing", note=note):
                stats.changed += 1
                log.warning(
                    "receipt %s missing order=%s",
                    receipt.key,
                    transaction.order_id,
                    extra={"order_id": transaction.order_id},
                )


def recheck_receipts(transaction_id, now=None):
    """Ask Uniteller for an order's receipts now (the console's re-check); TaskStats.

    Records what /v2/results holds and marks a receipt missing once the wait
    (RECEIPT_MISSING_MINUTES) is over; Uniteller's pacing or silence changes
    nothing and is told in the notes.
    """
    now = now or utcnow()
    stats = TaskStats()
    transaction = Transaction.get_or_none(Transaction.id == transaction_id)
    if transaction is None or not transaction.receipts.exists():
        return stats  # sent without receipts: nothing to look for
    try:
        _check(transaction, stats, now)
    except RateLimited as exc:
        stats.notes.append(f"asked to wait: {exc}")
    except UnitellerError as exc:
        stats.errors += 1
        stats.notes.append(str(exc))
        log.warning("receipt check %s: %s", transaction.order_id, exc)
    return stats


def run(now=None):
    """Ask about credited orders and done refunds whose receipts are still pending."""
    now = now or utcnow()
    stats = TaskStats()
    waiting = (
        Receipt.select(Receipt.transaction)
        .where(Receipt.state == "pending", Receipt.created_at <= now - RECHECK_AFTER)
        .group_by(Receipt.transaction)
        .order_by(Receipt.transaction)
    )
    asked = 0
    for (transaction_id,) in waiting.tuples().iterator():
        transaction = Transaction.get_by_id(transaction_id)
        if not _due(transaction):
            continue  # unpaid, or its refund not settled: not owed yet
        try:
            _check(transaction, stats, now)
        except RateLimited as exc:
            stats.notes.append(f"asked to wait: {exc}")
            break  # the next run goes on; the oldest are asked first again
        except UnitellerError as exc:
            stats.errors += 1
            stats.notes.append(f"{transaction.order_id}: {exc}")
            log.warning("receipt check %s: %s", transaction.order_id, exc)
        asked += 1
        if asked >= RECHECK_BATCH:
            break
    return stats
