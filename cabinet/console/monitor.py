"""The transaction monitor: an instance's transactions, their totals, CSV export."""

from datetime import date, timedelta

from flask import (
    Response,
    abort,
    current_app,
    make_response,
    render_template,
    request,
    stream_with_context,
)
from flask_babel import gettext as _

from .. import fiscal, monitor
from ..clock import (
    EARLIEST_DAY,
    LATEST_DAY,
    day_in_range,
    local_midnight_utc,
    local_timezone,
    local_today,
)
from ..labels import STATUS_LABELS
from ..pages import page_or_fragment, wants_fragment
from . import args
from .access import operator_required
from .blueprint import bp
from .wording import KIND_LABELS, RECEIPT_STATES

MONITOR_DAYS = 7
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LONGEST_PERIOD = timedelta(days=366)

# The monitor's queries call SQL functions the database must know first.
bp.record_once(
    lambda state: monitor.register_functions(state.app.extensions["database"])
)


class PeriodError(Exception):
    """The period typed in the form cannot be shown; the message says why."""


def _day(name, default):
    """Read ?from= or ?to= (YYYY-MM-DD); PeriodError if it is not a date we keep."""
    value = request.args.get(name, "").strip()
    if not value:
        return default
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise PeriodError(_("Not a date: %(value)s.", value=value[:40])) from None
    if not day_in_range(day):
        # The bounds in the reason, as every other period field words it.
        raise PeriodError(
            _(
                "%(name)s: a date from %(first)s to %(last)s",
                name=value,
                first=EARLIEST_DAY.isoformat(),
                last=LATEST_DAY.isoformat(),
            )
        )
    return day


def _period():
    """Read ?from= and ?to=: the last 7 days by default, at most a year."""
    today = local_today()
    first = _day("from", today - timedelta(days=MONITOR_DAYS - 1))
    last = _day("to", today)
    if last < first:
        raise PeriodError(_("The period ends before it starts."))
    if last - first > LONGEST_PERIOD:
        raise PeriodError(_("The period is at most a year."))
    return first, last


def _filters():
    """Read the monitor's filters: the query's, those the page shows, the period.

    An invalid period is a 400 here (summary, exports); the page catches
    PeriodError itself to show it on the form.
    """
    try:
        first, last = _period()
    except PeriodError as exc:
        abort(400, str(exc))
    return _filters_of(first, last)


def _filters_of(first, last):
    """Build the filters of a valid period and the other arguments."""
    status = args.status_filter()
    kind = request.args.get("kind", "")
    if kind and kind not in monitor.KINDS:
        abort(400, "unknown kind")
    filters = monitor.Filters(
        start=local_midnight_utc(first),
        end=local_midnight_utc(last + timedelta(1)),
        search=request.args.get("q", "").strip()[:100],
        status=status,
        kind=kind,
    )
    shown = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "q": filters.search,
        "status": status,
        "kind": kind,
    }
    return filters, shown, first, last


def _refused_context(error):
    """The page's context for a period it cannot show: the error, no rows, no totals."""
    args.status_filter()
    return {
        "rows": [],
        "receipts": {},
        "following": None,
        "filters": {
            "from": request.args.get("from", "")[:40],
            "to": request.args.get("to", "")[:40],
            "q": request.args.get("q", "").strip()[:100],
            "status": request.args.get("status", ""),
            "kind": request.args.get("kind", ""),
        },
        "after": "",
        "period_error": error,
    }


def _rows_context(instance):
    """Read the filters and fetch one keyset page of the instance's transactions."""
    filters, shown, _first, _last = _filters_of(*_period())
    shown["instance"] = instance.code
    rows, following = monitor.page(
        monitor.selection(instance, filters),
        current_app.config["PAGE_SIZE"],
        args.cursor(),
    )
    return {
        "rows": rows,
        "receipts": fiscal.sale_receipts_of([t.id for t in rows]),
        "following": following,
        "filters": shown,
        "after": request.args.get("after", ""),
    }


def _rows_only(context):
    """Answer only the rows (paging): the totals and the chart above stay."""
    response = make_response(render_template("console/_monitor-rows.html", **context))
    response.vary.update(("HX-Request", "HX-Target"))
    return response


@bp.route("/monitor")
@operator_required()
def monitor_page():
    """Show an instance's transactions of a period: filters and keyset pages."""
    instance = args.chosen_instance(request.args)
    if instance is None:
        return args.choose_instance("console.monitor_page")
    try:
        context = _rows_context(instance)
    except PeriodError as exc:
        context = _refused_context(str(exc))
    if wants_fragment() and request.headers.get("HX-Target") == "monitor-rows":
        return _rows_only(context)
    # The totals and the chart come by a request of their own once the page is
    # shown (console.monitor_summary): counting a year of a big instance can
    # take longer than the rows, and the operator need not wait for it.
    response = page_or_fragment(
        "console/monitor.html",
        "console/_monitor-table.html",
        # htmx swaps only a 2xx answer: the fragment with the error must
        # replace the old rows and totals, so only the whole page is a 400.
        status=400 if "period_error" in context and not wants_fragment() else 200,
        instance=instance,
        instances=args.instances(),
        statuses=args.STATUS_FILTERS,
        kinds=monitor.KINDS,
        **context,
    )
    response.vary.add("HX-Target")
    return response


@bp.route("/monitor/summary")
@operator_required()
def monitor_summary():
    """Count the monitor's filtered set per status and chart its paid sums per day."""
    instance = args.chosen_instance(request.args)
    if instance is None:
        abort(400, "which instance: ?instance=")
    filters, shown, first, last = _filters()
    shown["instance"] = instance.code
    per_status, series = monitor.summary(
        instance, filters, monitor.local_days(first, last, local_midnight_utc)
    )
    return page_or_fragment(
        "console/monitor-summary.html",
        "console/_monitor-summary.html",
        instance=instance,
        filters=shown,
        totals=per_status,
        total_count=sum(c for _, c, _ in per_status),
        total_sum=sum(s for _, _, s in per_status),
        chart=monitor.chart(series),
    )


def _csv_header():
    """Name the CSV's columns in the operator's language."""
    return [
        _("Date"),
        _("Order"),
        _("Contract"),
        _("Name"),
        _("Kind"),
        _("Status"),
        _("Amount"),
        _("Bill number"),
        _("Approval code"),
        _("Response code"),
        _("Message"),
        _("Receipt"),
    ]


def _words():
    """The exports' words for kinds, statuses and receipt states, in the operator's."""
    return {
        "kind": {code: str(label) for code, label in KIND_LABELS.items()},
        "status": {code: str(label) for code, label in STATUS_LABELS.items()},
        "receipt": {code: str(label) for code, label in RECEIPT_STATES.items()},
    }


def _export(chunks, mimetype, extension):
    """Stream the monitor's filtered set through `chunks` as a download."""
    instance = args.chosen_instance(request.args)
    if instance is None:
        abort(400, _("Choose a module instance."))
    filters, shown, _first, _last = _filters()
    body = chunks(instance, filters, local_timezone(), _csv_header(), _words())
    name = f"transactions-{instance.code}-{shown['from']}-{shown['to']}.{extension}"
    return Response(
        stream_with_context(body),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/monitor.csv")
@operator_required()
def monitor_csv():
    """Stream the monitor's filtered set as CSV (UTF-8 with BOM, ';')."""
    return _export(monitor.csv_chunks, "text/csv", "csv")


@bp.route("/monitor.xlsx")
@operator_required()
def monitor_xlsx():
    """Send the monitor's filtered set as XLSX: numbers, dates and text typed."""
    return _export(monitor.xlsx_chunks, XLSX_TYPE, "xlsx")
