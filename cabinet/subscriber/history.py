"""The subscriber's payment history: filtered by status and period, paged."""

from flask import abort, current_app, render_template, request
from flask_babel import gettext as _

from .. import fiscal, payments, refunds
from ..auth import current_contract
from ..models import STATUSES, Refund, Transaction
from ..pages import page_number, page_of, page_or_fragment, parse_period
from ..prepared import Prepared
from .blueprint import bp, contract_required
from .words import SHOWN_FILTERS, states_of

HISTORY_FILTERS = ("success", "open", *STATUSES)


# The columns a history row shows: a page reads no more than it prints.
HISTORY_COLUMNS = (
    Transaction.id,
    Transaction.created_at,
    Transaction.order_id,
    Transaction.amount,
    Transaction.status,
    # What a decline is put in words from (the codes themselves are not shown).
    Transaction.response_code,
    Transaction.error_code,
    Transaction.message,
    Transaction.payment_type,
)
_HISTORY_QUERIES = {}


def _history_query(status, since, until):
    """Return the prepared history query for a combination of filters."""
    key = (status, since, until)
    if key not in _HISTORY_QUERIES:
        _HISTORY_QUERIES[key] = Prepared(
            lambda slot: (
                Transaction.history(
                    slot("contract"),
                    status,
                    slot("start", Transaction.created_at) if since else None,
                    slot("end", Transaction.created_at) if until else None,
                )
                .select(*HISTORY_COLUMNS)
                .limit(slot("limit"))
                .offset(slot("offset"))
            )
        )
    return _HISTORY_QUERIES[key]


@bp.route("/payments")
@contract_required
def history():
    """List the subscriber's payments, filtered by status and period, paginated."""
    status = request.args.get("status", "")
    if status and status not in HISTORY_FILTERS:
        abort(400, _("There is no such payment status."))
    start, end = parse_period(request.args)
    page = page_number()
    size = current_app.config["PAGE_SIZE"]
    rows = _history_query(status or None, start is not None, end is not None).all(
        contract=current_contract().id,
        start=start,
        end=end,
        limit=size + 1,
        offset=(page - 1) * size,
    )
    paged = page_of(rows, page, size)
    return page_or_fragment(
        "subscriber/history.html",
        "subscriber/_payment-table.html",
        **paged,
        receipts=fiscal.sale_receipts_of([t.id for t in paged["rows"]]),
        states=states_of(paged["rows"]),
        # An SBP refund takes the NSPK's time: the subscriber sees it under way.
        refunding=refunds.refunding([t.id for t in paged["rows"]]),
        filters={k: request.args.get(k, "") for k in ("status", "from", "to")},
        statuses=SHOWN_FILTERS,
    )


@bp.route("/payments/<path:order_id>")
@contract_required
def payment_details(order_id):
    """Show one of the subscriber's payments: status with reason, receipt, refunds."""
    transaction = payments.transaction_of(current_contract(), order_id)
    refunds = list(
        transaction.refunds.where(Refund.status == "done").order_by(Refund.id)
    )
    return render_template(
        "subscriber/payment.html",
        transaction=transaction,
        state=states_of([transaction])[transaction.id],
        receipt=fiscal.sale_receipts_of([transaction.id]).get(transaction.id),
        refunds=refunds,
    )
