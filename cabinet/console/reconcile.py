"""Reconciliation: compare a period with Uniteller's records, fix what is safe.

A comparison runs as a job (POST), never inside a GET: a month of /results/
takes a while at one request per 5 s. Its page polls the run until it ends.
"""

from datetime import timedelta

from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import audit
from ..clock import local_today
from ..db import write_unit
from ..errors import CabinetError
from ..models import ReconcileRun
from ..pages import parse_date, wants_fragment
from ..reconcile import Report, start_run
from . import args
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import ActionForm, fresh_form_required
from .wording import DIFFERENCES


def _page(instance, first, last, run=None, status=200):
    """Render the reconciliation page: the period form, and a run if there is one."""
    return render_template(
        "console/reconcile.html",
        instance=instance,
        first=first or local_today() - timedelta(days=1),
        last=last or local_today(),
        action_form=ActionForm(),
        differences=DIFFERENCES,
        run=run,
        report=_report(run),
    ), status


def _report(run):
    """Return a finished run's report, or None."""
    return Report.from_dict(run.report) if run and run.report else None


@bp.route("/reconcile", methods=["GET", "POST"])
@operator_required(admin=True)
@fresh_form_required
def reconcile_page():
    """Show the period form; POST compares it with Uniteller in the background
    (with fix=1 it also credits what Uniteller reports paid, audited)."""
    posted = request.method == "POST"
    given = request.form if posted else request.args
    found = args.chosen_instance(given)
    if found is None:
        if posted:
            abort(400, _("Choose a module instance."))
        return args.choose_instance("console.reconcile_page")
    first, last = parse_date(given, "from"), parse_date(given, "to")
    if not posted:
        return _page(found, first, last)
    if first is None or last is None:
        abort(400, _("Give the period: from and to."))
    fix = given.get("fix") == "1"
    who = current_operator().login
    try:
        with write_unit():
            run = start_run(found, first, last, fix, who)
            if fix:
                audit.record(
                    current_operator(),
                    "reconcile.fix",
                    "instance",
                    found.code,
                    None,
                    {"from": first.isoformat(), "to": last.isoformat(), "run": run.id},
                )
    except CabinetError as exc:
        abort(400, _period_refusal(exc))
    if wants_fragment():
        return _run_fragment(run)
    return redirect(url_for("console.reconcile_run", run_id=run.id))


def _period_refusal(exc):
    """Word a refused period for the console."""
    if "longest" in exc.details:
        return _("The period is at most %(days)d days.", days=exc.details["longest"])
    if "before it starts" in exc.message:
        return _("The period ends before it starts.")
    return exc.message


def _run_fragment(run):
    """Render a run's progress (or report) fragment; it polls until the run ends."""
    return render_template(
        "console/_reconcile-run.html",
        run=run,
        report=_report(run),
        instance=run.instance,
        action_form=ActionForm(),
        differences=DIFFERENCES,
    )


@bp.route("/reconcile/runs/<int:run_id>")
@operator_required(admin=True)
def reconcile_run(run_id):
    """Show a reconciliation run: its progress, then its report."""
    run = ReconcileRun.get_or_none(ReconcileRun.id == run_id)
    if run is None:
        abort(404, _("No such reconciliation."))
    if wants_fragment():
        return _run_fragment(run)
    return _page(run.instance, run.day_from, run.day_to, run=run)
