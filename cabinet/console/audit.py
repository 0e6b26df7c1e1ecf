"""The audit log: who changed what and when, filtered and paginated."""

from flask import current_app, request

from .. import audit
from ..models import AuditEntry, Operator
from ..pages import page_number, page_of, page_or_fragment, parse_period
from .access import operator_required
from .blueprint import bp

FILTERS = ("operator", "action", "object_type", "from", "to")


def _entries(filters, start, end, page):
    """Return a page of entries, one more than PAGE_SIZE to tell if another follows."""
    size = current_app.config["PAGE_SIZE"]
    query = audit.entries(
        filters["operator"], filters["action"], filters["object_type"], start, end
    )
    return list(query.limit(size + 1).offset((page - 1) * size))


def _actions():
    """Return every action the log holds, for the filter."""
    query = AuditEntry.select(AuditEntry.action).distinct().order_by(AuditEntry.action)
    return [action for (action,) in query.tuples()]


@bp.route("/audit")
@operator_required(admin=True)
def audit_log():
    """List the audit log, filtered by operator, action, object and period."""
    start, end = parse_period(request.args)
    filters = {k: request.args.get(k, "").strip()[:64] for k in FILTERS}
    page = page_number()
    rows = _entries(filters, start, end, page)
    size = current_app.config["PAGE_SIZE"]
    return page_or_fragment(
        "console/audit.html",
        "console/_audit-table.html",
        **page_of(rows, page, size),
        filters=filters,
        actions=_actions(),
        operators=[o.login for o in Operator.select().order_by(Operator.login)],
    )
