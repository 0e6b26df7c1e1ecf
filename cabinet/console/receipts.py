"""54-FZ receipts: the ones to look at, and asking Uniteller about an order's."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import audit, fiscal
from ..db import write_unit
from ..models import Receipt
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import ActionForm, fresh_form_required
from .transactions import _transaction


@bp.route("/receipts")
@operator_required()
def receipts():
    """List receipts missing or failed, and those pending for long, with a re-check."""
    troubled, waiting = fiscal.attention()
    return render_template(
        "console/receipts.html",
        troubled=troubled,
        waiting=waiting,
        action_form=ActionForm(),
    )


@bp.route("/transactions/<order_id>/receipts/check", methods=["POST"])
@operator_required()
@fresh_form_required
def receipt_check(order_id):
    """Ask Uniteller for an order's fiscalized receipts now (audited)."""
    found = _transaction(order_id)
    before = _states(found)
    stats = fiscal.recheck_receipts(found.id)
    after = _states(found)
    with write_unit():
        audit.record(
            current_operator(),
            "transaction.receipt_check",
            "transaction",
            order_id,
            before,
            after,
        )
    notes = "; ".join(getattr(stats, "notes", []) or [])
    if notes:
        flash(_("Receipts re-checked: %(notes)s", notes=notes), "error")
    else:
        flash(_("Receipts re-checked."), "ok")
    back = request.form.get("back") == "list"
    return redirect(
        url_for("console.receipts")
        if back
        else url_for("console.transaction", order_id=order_id)
    )


def _states(transaction):
    """Each receipt's state, for the audit's before and after."""
    return {
        r.key: r.state
        for r in Receipt.select(Receipt.key, Receipt.state).where(
            Receipt.transaction == transaction.id
        )
    }
