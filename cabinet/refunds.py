"""Refunds through Uniteller's /unblock/: ask, record the answer, re-check."""

import logging
from datetime import timedelta

from peewee import IntegrityError, fn

from . import acquirer, payments
from .clock import utcnow
from .db import write_unit
from .errors import CabinetError
from .models import CREDITED_STATUSES, Refund, Transaction
from .money import AmountError, to_kopecks
from .task_stats import TaskStats
from .uniteller.client import (
    GatewayUnavailable,
    OperationRefused,
    UnitellerError,
    normalize_status,
)

log = logging.getLogger(__name__)

# What of an /unblock/ answer goes into the event row (no card or personal data).
_KEPT_ANSWER_FIELDS = (
    "OrderNumber",
    "Response_Code",
    "Message",
    "Total",
    "Status",
    "BillNumber",
    "ApprovalCode",
    "Error_Code",
    "Error_Comment",
    "Date",
)
# The /results/ fields a re-check asks for: with Balance, what is left after refunds.
# TODO: Uniteller's spec lists Balance among the callback fields; confirm with
# Uniteller that /results/ accepts it in S_FIELDS (the sandbox does).
_RECHECK_FIELDS = (
    "OrderNumber",
    "Status",
    "Total",
    "Balance",
    "BillNumber",
    "ApprovalCode",
    "Response_Code",
    "Message",
)
ALREADY_CANCELED = 16
# The refund state machine as data: each status with the statuses it may follow.
# `pending` is the unknown outcome: asked of Uniteller, its answer not (yet)
# known; only a re-check (/results/) or a late answer decides it, and no second
# refund of the same payment is asked while one is pending.
REFUND_TRANSITIONS = {
    "done": ("pending",),
    "failed": ("pending",),
}
# A refund whose request may still be under way at Uniteller is not judged failed
# by a re-check before this long (well beyond the client's timeout).
SETTLE_AFTER = timedelta(minutes=10)


class RefundRefused(CabinetError):
    """A refund that cannot be made; `message` is a code the console words."""

    status_code = 409


def refunded(transaction, status="done"):
    """Sum the refunds of a transaction in one status, kopecks."""
    # int(): PostgreSQL sums a bigint as numeric.
    return int(
        Refund.select(fn.COALESCE(fn.SUM(Refund.amount), 0))
        .where(Refund.transaction == transaction, Refund.status == status)
        .scalar()
    )


def refundable(transaction):
    """Return what may still be refunded: the amount less done and pending refunds."""
    return transaction.amount - refunded(transaction) - refunded(transaction, "pending")


def pending_refund(transaction):
    """Return the transaction's refund in flight, or None."""
    return Refund.get_or_none(
        Refund.transaction == transaction, Refund.status == "pending"
    )


def start_refund(transaction, amount, operator):
    """Refund `amount` kopecks (None: all that is left) of a credited transaction.

    Writes the pending refund and commits before calling Uniteller, then records
    the answer; returns the refund as it ended (done, failed or still pending).
    """
    with write_unit():
        transaction = Transaction.get_by_id(transaction.id)
        if transaction.status not in CREDITED_STATUSES:
            raise RefundRefused("not_credited")
        if not transaction.bill_number:
            raise RefundRefused("no_bill_number")
        if pending_refund(transaction) is not None:
            raise RefundRefused("pending")
        left = refundable(transaction)
        amount = left if amount is None else amount
        if amount <= 0:
            raise RefundRefused("not_positive")
        if amount > left:
            raise RefundRefused("too_much", left=left)
        try:
            refund = Refund.create(
                transaction=transaction, amount=amount, operator=operator
            )
        except IntegrityError:  # another operator's refund got in first
            raise RefundRefused("pending") from None
        _note(transaction, f"refund #{refund.id} of {amount} kopecks asked")
    client = acquirer.client_for(transaction.configuration)
    mismatch = _bill_number_mismatch(client, transaction)
    if mismatch:
        # Nothing was asked of /unblock/: the refund is refused, not pending.
        _failed(refund, "", mismatch)
        return Refund.get_by_id(refund.id)
    try:
        # Always with Subtotal_P: the spec defines it as the amount to refund, and
        # a final refund after a partial one without it would ask for the whole.
        answer = client.unblock(transaction.bill_number, amount)
    except GatewayUnavailable as exc:
        return _still_pending(refund, f"no answer from Uniteller ({exc}); re-check")
    except OperationRefused as exc:
        _failed(refund, exc.code, exc.message)
        if exc.code == ALREADY_CANCELED:
            # Canceled at Uniteller already (in its cabinet, say): learn the status.
            try:
                recheck(transaction)
            except UnitellerError as recheck_error:
                log.warning(
                    "re-check of %s failed: %s", transaction.order_id, recheck_error
                )
        return Refund.get_by_id(refund.id)
    except UnitellerError as exc:
        _failed(refund, "", str(exc))
        return Refund.get_by_id(refund.id)
    _done(refund, {k: answer[k] for k in _KEPT_ANSWER_FIELDS if k in answer})
    return Refund.get_by_id(refund.id)


def _bill_number_mismatch(client, transaction):
    """Say why the stored BillNumber may not be refunded, or "" if /results/ agrees.

    /unblock/ refunds whatever payment a BillNumber names: it must be the one
    Uniteller gives for this order, never one a report about another order held.
    """
    try:
        rows = acquirer.ask_results(
            client,
            acquirer.results_spacing(transaction.configuration),
            TaskStats(),
            order_id=transaction.order_id,
        )
    except UnitellerError as exc:
        return f"the bill number could not be confirmed ({exc}); try again"
    row = next((r for r in rows if r.get("OrderNumber") == transaction.order_id), None)
    if row is None:
        return "Uniteller does not know this order; nothing refunded"
    if row.get("BillNumber") != transaction.bill_number:
        log.warning(
            "refund of %s refused: bill number %s is not Uniteller's %s",
            transaction.order_id,
            transaction.bill_number,
            row.get("BillNumber"),
        )
        return "the bill number is not the one Uniteller gives this order"
    return ""


def recheck(transaction):
    """Ask Uniteller where an order stands; settle a pending refund and the status.

    Returns the /results/ row, or None if Uniteller does not know the order.
    """
    transaction = Transaction.get_by_id(transaction.id)
    configuration = transaction.configuration
    rows = acquirer.ask_results(
        acquirer.client_for(configuration),
        acquirer.results_spacing(configuration),
        TaskStats(),
        order_id=transaction.order_id,
        fields=_RECHECK_FIELDS,
    )
    row = next((r for r in rows if r.get("OrderNumber") == transaction.order_id), None)
    if row is None:
        return None
    refund = pending_refund(transaction)
    if refund is not None:
        _settle_from_balance(transaction, refund, row)
    if normalize_status(row.get("Status")) == "canceled":
        payments.apply_status(
            transaction.order_id,
            row["Status"],
            source="status",
            fields=row,
            instance=transaction.instance,
        )
    return row


def _settle_from_balance(transaction, refund, row):
    """Decide a pending refund from what Uniteller says is left on the order."""
    try:
        left_there = to_kopecks(row.get("Balance", "").replace(",", "."))
    except AmountError:
        if normalize_status(row.get("Status")) == "canceled":
            _done(refund, row, note="Uniteller reports the order canceled")
        return
    left_here = transaction.amount - refunded(transaction)
    if left_there <= left_here - refund.amount:
        _done(refund, row, note="confirmed by a status re-check")
    elif left_there == left_here and utcnow() - refund.created_at >= SETTLE_AFTER:
        _failed(refund, "", "Uniteller made no refund (status re-check)")


def _note(transaction, text, fields=None):
    """Keep a refund's step in the transaction's history (its status unchanged)."""
    payments.record_event(
        transaction,
        "refund",
        "refund",
        transaction.status,
        transaction.status,
        fields=fields,
        note=text,
    )


def _still_pending(refund, note):
    """Leave a refund pending with a note: its outcome is unknown until a re-check."""
    Refund.update(note=note[:500], updated_at=utcnow()).where(
        Refund.id == refund.id
    ).execute()
    transaction = refund.transaction
    _note(transaction, f"refund #{refund.id}: {note}"[:500])
    log.warning("refund #%d of %s pending: %s", refund.id, transaction.order_id, note)
    return Refund.get_by_id(refund.id)


def _failed(refund, code, message):
    """Record that Uniteller refused a pending refund."""
    with write_unit():
        changed = (
            Refund.update(
                status="failed",
                error_code=str(code)[:16],
                error_message=message[:500],
                updated_at=utcnow(),
            )
            .where(
                Refund.id == refund.id, Refund.status.in_(REFUND_TRANSITIONS["failed"])
            )
            .execute()
        )
        if changed:
            transaction = Transaction.get_by_id(refund.transaction_id)
            _note(transaction, f"refund #{refund.id} refused: {code} {message}"[:500])
    log.warning("refund #%d refused: %s %s", refund.id, code, message)


def _done(refund, fields, note=None):
    """Book a refund Uniteller made: off the balance; canceled once all is back."""
    with write_unit():
        # Hold the transaction's row first, as a `canceled` status change does: on
        # PostgreSQL the two otherwise each read what the transaction holds before
        # the other commits, and both take it back.
        Transaction.update(updated_at=utcnow()).where(
            Transaction.id == refund.transaction_id
        ).execute()
        changed = (
            Refund.update(status="done", note=note, updated_at=utcnow())
            .where(
                Refund.id == refund.id, Refund.status.in_(REFUND_TRANSITIONS["done"])
            )
            .execute()
        )
        if not changed:
            return
        transaction = Transaction.get_by_id(refund.transaction_id)
        taken = payments.book_refund(transaction, refund.id, refund.amount)
        _note(
            transaction,
            f"refund #{refund.id} of {refund.amount} kopecks done"
            + ("" if taken == refund.amount else f", {taken} taken off the balance"),
            fields=fields,
        )
    log.info(
        "refund #%d of %s done: %d", refund.id, transaction.order_id, refund.amount
    )
    if refunded(transaction) >= transaction.amount:
        payments.apply_status(transaction.order_id, "canceled", source="refund")
