"""Reconciliation: compare a period with Uniteller's records, fix what is safe."""

from datetime import timedelta

from flask import abort, render_template, request
from flask_babel import gettext as _

from .. import audit
from ..clock import local_today
from ..db import write_unit
from ..pages import parse_date
from ..reconcile import reconcile
from ..uniteller.client import UnitellerError
from . import args
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import ActionForm, fresh_form_required
from .wording import DIFFERENCES


def _record_fix(instance, first, last, report):
    """Record in the audit log what a reconciliation fixed."""
    with write_unit():
        audit.record(
            current_operator(),
            "reconcile.fix",
            "instance",
            instance.code,
            None,
            {
                "from": first.isoformat(),
                "to": last.isoformat(),
                "differences": len(report.differences),
                "fixed": [d.order_id for d in report.differences if d.fixed],
            },
        )


def _context(instance, first, last):
    """Gather the page: the period asked (yesterday and today by default), no report."""
    return {
        "instance": instance,
        "report": None,
        "error": None,
        "action_form": ActionForm(),
        "differences": DIFFERENCES,
        "first": first or local_today() - timedelta(days=1),
        "last": last or local_today(),
    }


def _compare(context, instance, first, last, fix):
    """Compare the period with Uniteller (fixing on POST) and render the report."""
    try:
        report = reconcile(instance, first, last, fix=fix, who=current_operator().login)
    except UnitellerError as exc:
        context["error"] = str(exc)
        return render_template("console/reconcile.html", **context), 502
    if fix:
        _record_fix(instance, first, last, report)
    context["report"] = report
    return render_template("console/reconcile.html", **context)


@bp.route("/reconcile", methods=["GET", "POST"])
@operator_required(admin=True)
@fresh_form_required
def reconcile_page():
    """Compare a period with Uniteller's records; POST fixes what is safe (audited)."""
    fix = request.method == "POST"
    given = request.form if fix else request.args
    found = args.chosen_instance(given)
    if found is None:
        if fix:
            abort(400, _("Choose a module instance."))
        return args.choose_instance("console.reconcile_page")
    first, last = parse_date(given, "from"), parse_date(given, "to")
    context = _context(found, first, last)
    if first is None or last is None:
        if fix:
            abort(400, _("Give the period: from and to."))
        return render_template("console/reconcile.html", **context)
    if last < first:
        abort(400, _("The period ends before it starts."))
    return _compare(context, found, first, last, fix)
