"""The audit log: who changed what and when, filtered and paginated."""

from flask import current_app, request, url_for

from .. import audit
from ..models import AuditEntry, Operator
from ..pages import page_number, page_of, page_or_fragment, parse_period
from .access import operator_required
from .blueprint import bp
from .wording import AUDIT_ACTIONS, OBJECT_TYPES, audit_values

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


# Where each kind of object lives in the console: (endpoint, its argument).
_OBJECT_PAGES = {
    "transaction": ("console.transaction", "order_id"),
    "contract": ("console.contract", "number"),
    "instance": ("console.instance", "code"),
    "task": ("console.tasks", "task"),
}
# "isp/main": a configuration or a connector named within its instance.
_WITHIN_INSTANCE = {
    "configuration": "console.instance",
    "billing_connector": "console.billing_connectors",
}


def object_url(entry):
    """The console page of an audit entry's object, or None."""
    if entry.object_type in _OBJECT_PAGES:
        endpoint, name = _OBJECT_PAGES[entry.object_type]
        return url_for(endpoint, **{name: entry.object_id})
    if entry.object_type in _WITHIN_INSTANCE and "/" in entry.object_id:
        code = entry.object_id.split("/", 1)[0]
        return url_for(_WITHIN_INSTANCE[entry.object_type], code=code)
    if entry.object_type == "billing_delivery":
        anchor = f"delivery-{entry.object_id}"
        return url_for("console.billing_attention", _anchor=anchor)
    return None


@bp.route("/audit")
@operator_required(admin=True)
def audit_log():
    """List the audit log, filtered by operator, action, object and period."""
    start, end = parse_period(request.args)
    filters = {k: request.args.get(k, "").strip()[:64] for k in FILTERS}
    page = page_number()
    actions = _actions()
    rows = _entries(filters, start, end, page)
    size = current_app.config["PAGE_SIZE"]
    return page_or_fragment(
        "console/audit.html",
        "console/_audit-table.html",
        **page_of(rows, page, size),
        filters=filters,
        actions=actions,
        operators=[o.login for o in Operator.select().order_by(Operator.login)],
        audit_actions={a: AUDIT_ACTIONS.get(a, a) for a in actions},
        object_types=OBJECT_TYPES,
        object_url=object_url,
        audit_values=audit_values,
    )
