"""One transaction: its events and refunds, a status re-check, a refund."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import audit, billing, fiscal, payments, refunds, status_check
from ..db import write_unit
from ..labels import status_label
from ..models import Refund, Transaction, TransactionEvent
from ..money import AmountError, format_human, parse_amount
from ..uniteller.client import UnitellerError
from ..wording import AMOUNT_ERRORS
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import ActionForm, RefundForm, fresh_form_required
from .wording import REFUSALS


def _transaction(order_id):
    """Return the transaction with this order id; 404 if there is none."""
    found = Transaction.by_order_id(order_id)
    if found is None:
        abort(404, _("No transaction with this order id."))
    return found


def _transaction_page(transaction, refund_form=None, status=200):
    """Render a transaction's page: its events, its refunds, the refund form."""
    events = list(
        TransactionEvent.select()
        .where(TransactionEvent.order_id == transaction.order_id)
        .order_by(TransactionEvent.created_at, TransactionEvent.id)
    )
    refund_list = list(
        Refund.select().where(Refund.transaction == transaction).order_by(Refund.id)
    )
    return render_template(
        "console/transaction.html",
        transaction=transaction,
        events=events,
        refunds=refund_list,
        refundable=refunds.refundable(transaction),
        refund_form=refund_form or RefundForm(),
        action_form=ActionForm(),
        deliveries=[
            (d, billing.attempts_of(d))
            for d in billing.deliveries(transaction=transaction)
        ],
        receipts=fiscal.receipts_of(transaction),
    ), status


def _audit(order_id, action, before, after):
    """Record an operator's action on a transaction in the audit log."""
    with write_unit():
        audit.record(current_operator(), action, "transaction", order_id, before, after)


@bp.route("/transactions/<order_id>")
@operator_required()
def transaction(order_id):
    """Show a transaction with its full event history and refunds."""
    return _transaction_page(_transaction(order_id))


# -- re-check ---------------------------------------------------------------------


def _check_state(transaction):
    """Describe what a re-check may change: the status, a refund in flight."""
    return {
        "status": transaction.status,
        "pending_refund": refunds.pending_refund(transaction) is not None,
    }


def _recheck(transaction):
    """Ask Uniteller about a transaction, apply the answer; return an error or None."""
    try:
        if refunds.pending_refund(transaction) is None and (
            transaction.status in payments.CHECKED_STATUSES
        ):
            stats = status_check.check_order(transaction.id)
            return "; ".join(stats.notes) or None
        # A final status and any refund in flight: /results/ with the balance.
        refunds.recheck(transaction)
    except UnitellerError as exc:
        return str(exc)
    return None


@bp.route("/transactions/<order_id>/check", methods=["POST"])
@operator_required()
@fresh_form_required
def check(order_id):
    """Ask Uniteller about a transaction now and apply the answer (audited)."""
    found = _transaction(order_id)
    before = _check_state(found)
    error = _recheck(found)
    found = Transaction.get_by_id(found.id)
    after = _check_state(found)
    if error:
        after["error"] = error
    _audit(order_id, "transaction.check", before, after)
    if error:
        flash(_("Uniteller did not answer: %(error)s", error=error), "error")
    else:
        label = str(status_label(found.status))
        flash(_("Status re-checked: %(status)s.", status=label), "ok")
    return redirect(url_for("console.transaction", order_id=order_id))


# -- refund -----------------------------------------------------------------------


def _refund_amount(form):
    """Read the refund form's amount (None: all that is left); AmountError if bad."""
    if (form.amount.data or "").strip():
        return parse_amount(form.amount.data)
    return None


def _refusal(exc):
    """Say in words why a refund was refused."""
    if exc.message == "too_much":
        return _(
            "At most %(left)s ₽ of this payment can be refunded.",
            left=format_human(exc.details["left"]),
        )
    return REFUSALS[exc.message]


# /v2/cancel's fiscal refusals (fiscal 02.1.18 §2.5.2), in the operator's words.
FISCAL_REFUSALS = {
    "50": lambda: _(
        "Refund not made: Uniteller could not fiscalize the refund receipt (error "
        "50). Nothing was refunded; try again later or refund in Uniteller's cabinet."
    ),
    "51": lambda: _(
        "Refund not made: the refund receipt was fiscalized, the refund itself "
        "failed, and Uniteller issued correction receipts that undo it (error 51). "
        "Nothing was refunded."
    ),
}


def _flash_refund(made):
    """Tell the operator how the refund ended: done, refused or still open."""
    if made.status == "done":
        amount = format_human(made.amount)
        flash(_("Refund of %(amount)s ₽ done.", amount=amount), "ok")
    elif made.status == "failed" and made.error_code in FISCAL_REFUSALS:
        flash(FISCAL_REFUSALS[made.error_code](), "error")
    elif made.status == "failed":
        message = _(
            "Uniteller refused the refund: %(code)s %(message)s",
            code=made.error_code or "",
            message=made.error_message or "",
        )
        flash(message, "error")
    else:
        message = _(
            "Uniteller did not answer in time. The refund is in progress: "
            "re-check the status later."
        )
        flash(message, "error")


@bp.route("/transactions/<order_id>/refund", methods=["POST"])
@operator_required()
def refund(order_id):
    """Refund a credited transaction in full or in part through Uniteller (audited)."""
    found = _transaction(order_id)
    form = RefundForm()
    if not form.validate_on_submit():
        return _transaction_page(found, form, 400)
    try:
        amount = _refund_amount(form)
    except AmountError as exc:
        form.amount.errors.append(AMOUNT_ERRORS[str(exc)])
        return _transaction_page(found, form, 400)
    before = {"status": found.status, "refundable": refunds.refundable(found)}
    try:
        made = refunds.start_refund(found, amount, current_operator())
    except refunds.RefundRefused as exc:
        form.amount.errors.append(_refusal(exc))
        return _transaction_page(found, form, 409)
    found = Transaction.get_by_id(found.id)
    _audit(order_id, "transaction.refund", before, _refund_outcome(found, made))
    _flash_refund(made)
    return redirect(url_for("console.transaction", order_id=order_id))


def _refund_outcome(transaction, made):
    """Describe a refund's outcome for the audit log."""
    return {
        "status": transaction.status,
        "refund": made.id,
        "amount": made.amount,
        "refund_status": made.status,
        "error": made.error_message,
    }


@bp.route("/transactions/<order_id>/reviewed", methods=["POST"])
@operator_required()
@fresh_form_required
def reviewed(order_id):
    """Take the review flag off a transaction once looked at (audited)."""
    found = _transaction(order_id)
    operator = current_operator()
    with write_unit():
        cleared = payments.clear_review(found, f"console:{operator.login}")
        if cleared:
            audit.record(
                operator,
                "transaction.reviewed",
                "transaction",
                order_id,
                {"needs_review": True, "review_reason": found.review_reason},
                {"needs_review": False},
            )
    if cleared:
        flash(_("Marked as reviewed."), "ok")
    else:
        flash(_("This transaction was not flagged for review."), "error")
    if request.form.get("back") == "attention":
        return redirect(url_for("console.attention_page", _anchor="review"))
    return redirect(url_for("console.transaction", order_id=order_id))
