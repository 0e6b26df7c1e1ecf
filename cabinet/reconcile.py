"""Compare our transactions of a period with Uniteller's records; fix the safe way."""

from dataclasses import asdict, dataclass, field
from datetime import UTC, timedelta

from flask import current_app

from . import acquirer, payments
from .clock import EARLIEST_DAY, LATEST_DAY, day_in_range, local_period_utc, utcnow
from .db import write_unit
from .errors import CabinetError
from .extensions import CHECKS_QUEUE_NAME
from .models import CREDITED_STATUSES, ReconcileRun, Transaction
from .money import AmountError, format_wire, to_kopecks
from .queueing import enqueue
from .task_stats import TaskStats
from .uniteller.client import UnitellerError, normalize_status

SUCCESS_THERE = {"authorized", "paid"}
WINDOW = timedelta(days=7) - timedelta(minutes=1)
SKEW = timedelta(minutes=10)


@dataclass
class Difference:
    """One way our records and Uniteller's disagree about an order."""

    # missing_credit | not_successful_there | amount_mismatch | unknown_here |
    # unreadable_there (Uniteller's row for it did not parse: nothing is judged)
    kind: str
    order_id: str
    ours: str = ""
    theirs: str = ""
    fixed: bool = False


@dataclass
class Report:
    """The differences of a period, and how many orders each side had."""

    ours: int = 0
    theirs: int = 0
    requests: int = 0
    differences: list = field(default_factory=list)
    # Order numbers ("" when a row had none) of Uniteller's rows that did not parse.
    unreadable: list = field(default_factory=list)

    def count(self, kind):
        """Count the differences of one kind."""
        return sum(1 for d in self.differences if d.kind == kind)

    def as_dict(self):
        """The report as plain data (what a run keeps)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Read back a report a run kept."""
        differences = [Difference(**d) for d in data.get("differences", ())]
        return cls(data["ours"], data["theirs"], data["requests"], differences)


def check_period(day_from, day_to):
    """Refuse (CabinetError) a period that is not one to compare."""
    if not (day_in_range(day_from) and day_in_range(day_to)):
        raise CabinetError(f"a date from {EARLIEST_DAY} to {LATEST_DAY}")
    if day_to < day_from:
        raise CabinetError("the period ends before it starts")
    # Each 7 days cost a /results/ request, one per 5 s per shop for everyone.
    longest = current_app.config["RECONCILE_MAX_DAYS"]
    if (day_to - day_from).days + 1 > longest:
        raise CabinetError(
            f"the period is at most {longest} days (RECONCILE_MAX_DAYS)",
            longest=longest,
        )


def reconcile(instance, day_from, day_to, fix=False, who="cli"):
    """Report (and with fix, credit) the differences for an instance and a period."""
    check_period(day_from, day_to)
    start, end = local_period_utc(day_from, day_to)
    ours = list(
        Transaction.select().where(
            Transaction.instance == instance,
            Transaction.created_at >= start,
            Transaction.created_at < end,
        )
    )
    report = Report(ours=len(ours))
    configurations = {t.configuration_id: t.configuration for t in ours}
    active = instance.active_configuration()
    if active is not None:
        configurations.setdefault(active.id, active)
    theirs = {}
    asked = set()
    for configuration in configurations.values():
        shop = configuration.params.get("shop_id")
        if shop in asked:
            continue
        asked.add(shop)
        theirs.update(_fetch(configuration, start - SKEW, end + SKEW, report))
    report.theirs = len(theirs)
    _compare(ours, theirs, report, fix, who)
    return report


def _fetch(configuration, start, end, report):
    """Fetch Uniteller's orders of a period, in windows it accepts, within its limit."""
    client = acquirer.client_for(configuration)
    spacing = acquirer.results_spacing(configuration)
    rows = {}
    stats = TaskStats()
    cursor, end = start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    while cursor < end:
        window_end = min(cursor + WINDOW, end)
        answer = acquirer.ask_results(
            client, spacing, stats, start=cursor, end=window_end
        )
        for row in answer:
            rows[row.get("OrderNumber")] = row
        report.unreadable += answer.unreadable
        cursor = window_end
    report.requests += stats.requests
    return rows


def _compare(ours, theirs, report, fix, who):
    """List the differences; with fix, credit what Uniteller reports paid."""
    known = {t.order_id: t for t in ours}
    for transaction in ours:
        row = theirs.get(transaction.order_id)
        if row is None and transaction.order_id in report.unreadable:
            report.differences.append(
                Difference(
                    "unreadable_there",
                    transaction.order_id,
                    transaction.status,
                    "the row did not parse",
                )
            )
            continue
        there = normalize_status(row.get("Status")) if row else None
        credited = transaction.status in CREDITED_STATUSES
        if there in SUCCESS_THERE and not credited:
            difference = Difference(
                "missing_credit",
                transaction.order_id,
                transaction.status,
                row.get("Status"),
            )
            if fix:
                outcome = payments.apply_status(
                    transaction.order_id,
                    row["Status"],
                    source="reconcile",
                    fields={**row, "reconciled_by": who},
                    instance=transaction.instance,
                )
                difference.fixed = outcome.result == "credited"
            report.differences.append(difference)
        elif credited and there not in SUCCESS_THERE:
            report.differences.append(
                Difference(
                    "not_successful_there",
                    transaction.order_id,
                    transaction.status,
                    row.get("Status") if row else "unknown",
                )
            )
        if row and row.get("Total") and _kopecks(row["Total"]) != transaction.amount:
            report.differences.append(
                Difference(
                    "amount_mismatch",
                    transaction.order_id,
                    format_wire(transaction.amount),
                    row["Total"],
                )
            )
    nameless = report.unreadable.count("")
    if nameless:
        report.differences.append(
            Difference(
                "unreadable_there", "", "", f"{nameless} row(s) without an order"
            )
        )
    for order_id, row in theirs.items():
        if order_id not in known and Transaction.by_order_id(order_id) is None:
            report.differences.append(
                Difference(
                    "unknown_here",
                    order_id,
                    "",
                    f"{row.get('Status')} {row.get('Total')}",
                )
            )


def _kopecks(text):
    try:
        return to_kopecks(text.replace(",", "."))
    except AmountError:
        return None


# --- a reconciliation run in the background (the console's) ---------------------


def start_run(instance, day_from, day_to, fix, who):
    """Record a reconciliation and enqueue it once committed (CabinetError: refused)."""
    check_period(day_from, day_to)
    with write_unit():
        run = ReconcileRun.create(
            instance=instance, day_from=day_from, day_to=day_to, fix=fix, who=who
        )
        # Behind charges: a month of /results/ takes a while at one per 5 s.
        enqueue("reconcile_run", run.id, timeout=3600, queue=CHECKS_QUEUE_NAME)
    return run


def perform_run(run_id):
    """Run a recorded reconciliation once and keep its report on the run."""
    claimed = (
        ReconcileRun.update(status="running", started_at=utcnow())
        .where(ReconcileRun.id == run_id, ReconcileRun.status == "queued")
        .execute()
    )
    if not claimed:
        return None  # run already, or running elsewhere
    run = ReconcileRun.get_by_id(run_id)
    this_run = ReconcileRun.id == run_id
    try:
        report = reconcile(
            run.instance, run.day_from, run.day_to, fix=run.fix, who=run.who
        )
    except (UnitellerError, CabinetError) as exc:
        ReconcileRun.update(
            status="failed", error=str(exc)[:500], finished_at=utcnow()
        ).where(this_run).execute()
        return run_id
    except Exception as exc:
        ReconcileRun.update(
            status="failed",
            error=f"crashed: {type(exc).__name__}",
            finished_at=utcnow(),
        ).where(this_run).execute()
        raise
    ReconcileRun.update(
        status="done", report=report.as_dict(), finished_at=utcnow()
    ).where(this_run).execute()
    return run_id
