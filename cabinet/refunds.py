"""Refunds through Uniteller's /unblock/ (/v2/cancel with a receipt): ask, re-check."""

import logging
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from peewee import IntegrityError, fn

from . import acquirer, fiscal, payments
from .autopay.notices import notify
from .clock import local_date, utcnow
from .db import write_unit
from .errors import CabinetError
from .models import CREDITED_STATUSES, Receipt, Refund, Transaction
from .money import AmountError, format_human, to_kopecks
from .task_stats import TaskStats
from .uniteller.client import (
    WITH_REFUNDS,
    GatewayUnavailable,
    OperationRefused,
    RateLimited,
    UnexpectedAnswer,
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
# The pending refunds one run of the refund check asks about, oldest first, and
# how old one is before it is asked about (its own answer may still come).
RECHECK_BATCH = 50
RECHECK_AFTER = timedelta(minutes=1)
APPROVED = "AS000"
# /v2/cancel's answer codes (fiscal 02.1.18 §2.5.2, §3.14, Appendix 8): success,
# and the two fiscal refusals. 50: the refund receipt failed, nothing refunded;
# 51: the refund receipt was fiscalized, the refund failed, and correction
# receipts undoing it were fiscalized. Every other code is refused before any
# receipt (10-19: the request's receipt or the order's balance; 5: no cash desk).
CANCEL_DONE = ("0", "00")
RECEIPT_FAILED = 50
REFUND_FAILED_CORRECTED = 51
# What of a /v2/cancel answer goes into the event row (the receipts are kept
# as fiscal documents).
_KEPT_CANCEL_FIELDS = ("Code", "Note", "Status", "Balance")
# Codes that may mean the order was refunded or closed at Uniteller already.
_CANCEL_RECHECK = (15, 16)


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


def refunding(transaction_ids):
    """Return the ids among these transactions that have a refund in flight."""
    if not transaction_ids:
        return set()
    query = Refund.select(Refund.transaction).where(
        Refund.transaction.in_(transaction_ids), Refund.status == "pending"
    )
    return {row.transaction_id for row in query}


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
        # A sale that went with a receipt is refunded with one, by its order id
        # (/v2/cancel); one that went without (the profile was switched on
        # later) is refunded as it was paid, by its BillNumber.
        with_receipt = acquirer.is_fiscal(transaction.configuration) and (
            Receipt.of_sale(transaction.id) is not None
        )
        if not with_receipt and not transaction.bill_number:
            raise RefundRefused("no_bill_number")
        if pending_refund(transaction) is not None:
            raise RefundRefused("pending")
        left = refundable(transaction)
        amount = left if amount is None else amount
        if amount <= 0:
            raise RefundRefused("not_positive")
        if amount > left:
            raise RefundRefused("too_much", left=left)
        if transaction.payment_type == "sbp" and amount != transaction.amount:
            # /results/ lists no SBP refunds (v1.43 Table 34 #7): only the
            # order's Canceled can tell that a refund was made.
            raise RefundRefused("sbp_partial")
        try:
            refund = Refund.create(
                transaction=transaction, amount=amount, operator=operator
            )
        except IntegrityError:  # another operator's refund got in first
            raise RefundRefused("pending") from None
        _note(transaction, f"refund #{refund.id} of {amount} kopecks asked")
        # Frozen with the refund: a re-check never builds another.
        receipt = None
        if with_receipt:
            receipt = fiscal.issue_refund(transaction, refund.id, amount)
    client = acquirer.client_for(transaction.configuration)
    if receipt is not None:
        return _cancel(client, transaction, refund, receipt)
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
    kept = {k: answer[k] for k in _KEPT_ANSWER_FIELDS if k in answer}
    verdict, why = judge_answer(transaction, answer)
    if verdict == "done":
        _done(refund, kept)
    elif verdict == "failed":
        _failed(refund, answer.get("Response_Code", ""), why)
    else:
        _still_pending(refund, why)
        # Accepted and not final in the answer (a partial refund of a card): its
        # refund row in /results/ says at once whether it was made.
        try:
            recheck(transaction)
        except UnitellerError as exc:
            log.warning("re-check of %s failed: %s", transaction.order_id, exc)
    return Refund.get_by_id(refund.id)


def _cancel(client, transaction, refund, receipt):
    """Refund with its receipt through /v2/cancel and record the answer."""
    # A full refund of the order sends no Subtotal (fiscal §3.14); any other
    # names its amount, the receipt's total.
    whole = refund.amount == transaction.amount
    try:
        answer = client.cancel(
            transaction.order_id, None if whole else refund.amount, receipt=receipt
        )
    except (GatewayUnavailable, UnexpectedAnswer) as exc:
        # The refund and its receipt may have been made: only the re-check
        # (/v2/results' refund rows) decides; nothing is sent again.
        return _still_pending(refund, f"no answer from Uniteller ({exc}); re-check")
    except UnitellerError as exc:
        # Refused before it reached the operation (429, "ERROR: …").
        _failed(refund, "", str(exc), receipt_state="void")
        return Refund.get_by_id(refund.id)
    code = str(answer.get("Code", "")).strip()
    note = str(answer.get("Note") or "").strip()
    kept = {k: answer[k] for k in _KEPT_CANCEL_FIELDS if k in answer}
    documents = _documents(transaction, answer.get("Receipt"))
    refund_receipt = Receipt.of_refund(refund.id)
    if documents:
        fiscal.record_documents(transaction, documents, "answer", refund_receipt)
    if code in CANCEL_DONE:
        made = normalize_status(answer.get("Status")) in ("canceled", "partly_canceled")
        # An SBP refund answers Paid, receipt and all: the NSPK makes it later
        # (v1.43 §4.5.2.4), and the callback or /results/ tells.
        if not made and transaction.payment_type == "sbp":
            _still_pending(refund, "SBP refund sent to the NSPK; awaiting its outcome")
        elif not made and not documents:
            # Accepted, not made yet (an SBP refund is asynchronous, fiscal
            # §2.5.8): its refund row and receipt come later.
            _still_pending(refund, f"Uniteller answered {code} without receipts")
            _recheck_quietly(transaction)
        else:
            _done(refund, kept)
        return Refund.get_by_id(refund.id)
    number = int(code) if code.isdigit() else code
    if number == RECEIPT_FAILED:
        _failed(refund, number, note or "Fiscal reversal receipt failure", "failed")
    elif number == REFUND_FAILED_CORRECTED:
        # The refund receipt was fiscalized and then undone by correction
        # receipts (kept above): it stands issued, with its corrections beside it.
        _failed(
            refund,
            number,
            note or "Fiscal reversal operation failure",
            note="the refund failed; correction receipts undo this receipt",
        )
        if not documents:
            _recheck_quietly(transaction)  # its receipts are in /v2/results
    else:
        _failed(refund, number, note or f"error {code}", receipt_state="void")
        if number in _CANCEL_RECHECK:
            _recheck_quietly(transaction)
    return Refund.get_by_id(refund.id)


def _documents(transaction, text):
    """Read the fiscalized receipts of an answer; [] if none or unreadable."""
    try:
        return fiscal.decode_documents(text) if isinstance(text, str) else []
    except fiscal.UnreadableReceipts as exc:
        # Kept pending: the receipt check finds them in /v2/results.
        log.warning(
            "/v2/cancel %s: receipts unreadable (%s)", transaction.order_id, exc
        )
        return []


def _recheck_quietly(transaction):
    """Re-check an order's refunds now; Uniteller's silence leaves it to the task."""
    try:
        recheck(transaction)
    except UnitellerError as exc:
        log.warning("re-check of %s failed: %s", transaction.order_id, exc)


def judge_answer(transaction, answer):
    """Read an /unblock/ answer as the spec's example does: (verdict, why).

    The row is the order's own (v1.43 §8.3.2.1): a refused refund has a response
    code other than AS000, a full refund ends the order canceled; anything else
    (a partial refund of a card leaves it paid, an SBP refund is asynchronous)
    is settled by the refund check from /results/' refund rows.
    """
    if answer.get("OrderNumber", transaction.order_id) != transaction.order_id:
        return "pending", "the answer names another order; re-check"
    code = answer.get("Response_Code", "").strip().upper()
    if code and code != APPROVED:
        return "failed", (answer.get("Message") or code).strip()
    status = normalize_status(answer.get("Status"))
    if status in ("canceled", "partly_canceled"):
        return "done", ""
    return "pending", f"Uniteller answered {status or 'no status'}; re-check"


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

    Returns the order's /results/ row, or None if Uniteller does not know it.
    """
    transaction = Transaction.get_by_id(transaction.id)
    configuration = transaction.configuration
    # An order sent with receipts is asked of /v2/results, whose rows also
    # carry its fiscalized receipts (fiscal §3.16).
    with_receipts = transaction.receipts.exists()
    rows = acquirer.ask_results(
        acquirer.client_for(configuration),
        acquirer.results_spacing(configuration),
        TaskStats(),
        order_id=transaction.order_id,
        payments_results=WITH_REFUNDS,
        **(
            {"fields": fiscal.RECEIPT_RESULT_FIELDS, "fiscal": True}
            if with_receipts
            else {}
        ),
    )
    if with_receipts:
        fiscal.record_rows(transaction, rows)
    mine = [r for r in rows if r.get("OrderNumber") == transaction.order_id]
    refund_rows = [r for r in mine if _is_refund_row(r)]
    row = next((r for r in mine if not _is_refund_row(r)), None)
    if row is None:
        return None
    refund = pending_refund(transaction)
    if refund is not None and not rows.names_unreadable(transaction.order_id):
        _settle_from_rows(transaction, refund, row, refund_rows)
    if normalize_status(row.get("Status")) == "canceled":
        payments.apply_status(
            transaction.order_id,
            row["Status"],
            source="status",
            fields=row,
            instance=transaction.instance,
        )
    return row


def recheck_pending(now=None):
    """Re-check the refunds left pending (a lost or not yet final /unblock/ answer)."""
    now = now or utcnow()
    stats = TaskStats()
    pending = (
        Refund.select()
        .where(Refund.status == "pending", Refund.created_at <= now - RECHECK_AFTER)
        # Least recently looked at first: refunds that stay pending (an SBP one
        # the NSPK takes its time over) go to the back, never ahead of the rest.
        .order_by(Refund.updated_at, Refund.id)
        .limit(RECHECK_BATCH)
    )
    for refund in pending:
        stats.looked_at += 1
        try:
            recheck(refund.transaction)
        except RateLimited as exc:
            stats.notes.append(f"asked to wait: {exc}")
            break  # the next run goes on where this one stopped
        except UnitellerError as exc:
            stats.errors += 1
            stats.notes.append(f"refund #{refund.id}: {exc}")
            log.warning("re-check of refund #%d failed: %s", refund.id, exc)
        touched = (
            Refund.update(updated_at=utcnow())
            .where(Refund.id == refund.id, Refund.status == "pending")
            .execute()
        )
        stats.changed += not touched
    return stats


def _is_refund_row(row):
    """Tell a refund row of PaymentsResults=3 (Status "Refund") from the order's."""
    return (row.get("Status") or "").strip().lower() == "refund"


def _settle_from_rows(transaction, refund, row, refund_rows):
    """Decide a pending refund from the refunds Uniteller lists for the order."""
    try:
        refunded_there = sum(
            to_kopecks(r.get("Total", "").replace(",", ".")) for r in refund_rows
        )
    except AmountError:
        return  # a refund row we cannot read decides nothing
    refunded_here = refunded(transaction)
    if refunded_there >= refunded_here + refund.amount:
        _done(refund, row, note="confirmed by a status re-check")
    elif normalize_status(row.get("Status")) == "canceled":
        # A reversal before capture, or an SBP refund: no refund rows for it.
        _done(refund, row, note="Uniteller reports the order canceled")
    elif (
        # An SBP refund has no refund rows (v1.43 Table 34 #7) and takes the
        # NSPK's time: silence is not a refusal.
        transaction.payment_type != "sbp"
        and refunded_there <= refunded_here
        and utcnow() - refund.created_at >= SETTLE_AFTER
    ):
        _failed(refund, "", "Uniteller made no refund (status re-check)", "void")


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
    # Only while it is pending: a callback may have settled it meanwhile.
    Refund.update(note=note[:500], updated_at=utcnow()).where(
        Refund.id == refund.id, Refund.status == "pending"
    ).execute()
    transaction = refund.transaction
    _note(transaction, f"refund #{refund.id}: {note}"[:500])
    log.warning("refund #%d of %s pending: %s", refund.id, transaction.order_id, note)
    return Refund.get_by_id(refund.id)


def _failed(refund, code, message, receipt_state=None, note=None):
    """Record that Uniteller refused a pending refund (and its receipt's state)."""
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
            receipt = Receipt.of_refund(refund.id)
            if receipt is not None and receipt_state:
                fiscal.set_state(receipt.id, receipt_state, note=message)
            elif receipt is not None and note:
                fiscal.annotate(receipt.id, note)
    log.warning("refund #%d refused: %s %s", refund.id, code, message)


def notify_refund(transaction, amount):
    """Tell the subscriber that money went back to the card (a notice, maybe mail)."""
    return notify(
        transaction.contract,
        "refund",
        _l(
            "%(amount)s ₽ of your payment of %(paid)s ₽ from %(date)s went back "
            "to the card; the balance is lower by as much.",
            amount=format_human(amount),
            paid=format_human(transaction.amount),
            date=local_date(transaction.created_at).strftime("%d.%m.%Y"),
        ),
    )


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
        notify_refund(transaction, refund.amount)
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


@payments.transaction_reversing.connect
def on_transaction_reversing(transaction):
    """Book a pending SBP refund before its `canceled` reverses the rest: the money
    went back as that refund (a refund entry, refund.completed to the billing)."""
    on_transaction_changed(transaction, None, None)


@payments.transaction_changed.connect
def on_transaction_changed(transaction, old, outcome):
    """Settle a pending SBP refund when its `canceled` arrives (callback or status)."""
    if transaction.status != "canceled" or transaction.payment_type != "sbp":
        return
    refund = pending_refund(transaction)
    if refund is not None and refund.amount + refunded(transaction) >= (
        transaction.amount
    ):
        _done(refund, None, note="Uniteller reports the order canceled")
