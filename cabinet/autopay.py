"""Autopay: set-up, what is due when, the daily run, the charges and their dunning."""

import calendar
import logging
import os
import re
import signal
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l
from peewee import IntegrityError

from . import acquirer, events, payments
from . import params as module_params
from .db import db, on_commit, write_unit
from .errors import CabinetError, NotFound
from .extensions import get_queue, get_redis
from .models import (
    Autopay,
    AutopayCharge,
    AutopayConsent,
    Contract,
    ModuleConfiguration,
    Notice,
    Transaction,
    utcnow,
)
from .money import format_human, to_kopecks
from .pacing import ConcurrencySlots
from .prepared import Prepared
from .task_stats import TaskStats
from .uniteller.client import OperationRefused, UnitellerError

log = logging.getLogger(__name__)

TERMS_VERSION = "2026-11"
MODES = ("weekly", "monthly", "automatic")
# Declines after which retrying the same card is pointless: expired, blocked or
# bad card, fraud, Uniteller's stop code, and recurrent refusals about the parent.
HARD_RESPONSE_CODES = {"AS101", "AS104", "AS108"}
HARD_ERRORS = {22, 23, 25, 26, 27}
# Answers that say nothing of the outcome: ask /results/ before sending again.
UNKNOWN_ERRORS = {15, 24, 28}
FAILED_PER_PARENT_PER_DAY = 2
STUCK_AFTER = timedelta(minutes=10)
PLAN_BATCH = 1000  # charges inserted (and jobs enqueued) at a time by the daily run


class AutopayError(CabinetError):
    """An autopay request that cannot be carried out as asked."""

    status_code = 409


@dataclass
class Stats:
    """What one daily run looked at and did."""

    looked_at: int = 0
    changed: int = 0
    errors: int = 0
    notes: list = field(default_factory=list)


# --- time and due dates -------------------------------------------------------


def local_today(now=None):
    """Today's date in the ISP's timezone."""
    now = (now or utcnow()).replace(tzinfo=UTC)
    return now.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).date()


def local_date(moment):
    """The ISP-local date of a stored UTC time."""
    return local_today(moment)


def due_on(autopay, day):
    """True if a weekly or monthly autopay charges on this local date."""
    if autopay.mode == "weekly":
        return day.weekday() == autopay.weekday
    if autopay.mode == "monthly":
        last = calendar.monthrange(day.year, day.month)[1]
        return day.day == min(autopay.day_of_month, last)
    return False


def period_of(autopay, day):
    """Name the period a due date belongs to: one charge per period, ever."""
    if autopay.mode == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def next_charge_date(autopay, today):
    """The next local date a weekly or monthly autopay charges (today included)."""
    if autopay.mode not in ("weekly", "monthly") or autopay.state != "active":
        return None
    for offset in range(0, 32):
        day = today + timedelta(days=offset)
        if due_on(autopay, day) and not _charged(autopay, period_of(autopay, day)):
            return day
    return None


def _charged(autopay, period):
    return (
        AutopayCharge.select()
        .where(AutopayCharge.autopay == autopay, AutopayCharge.period == period)
        .exists()
    )


# --- configuration -------------------------------------------------------------


def allowed_modes(configuration):
    """The modes a configuration lets subscribers choose."""
    if configuration is None:
        return []
    p = module_params.effective(configuration.params)
    return [mode for mode in MODES if p[f"autopay_{mode}"] == "yes"]


def autopay_of(contract):
    """Return a contract's autopay, or None."""
    return Autopay.get_or_none(Autopay.contract == contract)


def summary(contract, charges=5):
    """What people see of a contract's autopay: it, its next and its last charges."""
    current = autopay_of(contract)
    if current is None:
        return {"autopay": None, "next_day": None, "charges": []}
    return {
        "autopay": current,
        "next_day": next_charge_date(current, local_today()),
        "charges": list(
            current.charges.order_by(AutopayCharge.id.desc()).limit(charges)
        ),
    }


# --- set-up by the subscriber ----------------------------------------------------


def configure(
    contract, mode, amount, weekday=None, day_of_month=None, ip="", user_agent=""
):
    """Set autopay's mode and parameters, recording consent; True if a card is needed.

    An active autopay with a card keeps it: changing the weekday, day or amount
    needs no new card payment.
    """
    _, configuration = acquirer.payment_gateway(contract)
    if mode not in allowed_modes(configuration):
        raise AutopayError("mode_not_allowed")
    low, high = acquirer.amount_limits(configuration)
    if mode in ("weekly", "monthly") and not low <= (amount or 0) <= high:
        raise AutopayError("amount_out_of_range", low=low, high=high)
    if mode == "weekly" and weekday not in range(7):
        raise AutopayError("bad_weekday")
    if mode == "monthly" and day_of_month not in range(1, 32):
        raise AutopayError("bad_day")
    values = {
        "mode": mode,
        "weekday": weekday if mode == "weekly" else None,
        "day_of_month": day_of_month if mode == "monthly" else None,
        "amount": amount if mode in ("weekly", "monthly") else None,
        "updated_at": utcnow(),
    }
    with write_unit():
        autopay = autopay_of(contract)
        if autopay is None:
            autopay = Autopay.create(contract=contract, state="binding", **values)
        else:
            Autopay.update(values).where(Autopay.id == autopay.id).execute()
            autopay = Autopay.get_by_id(autopay.id)
        AutopayConsent.create(
            autopay=autopay,
            terms_version=TERMS_VERSION,
            mode=mode,
            amount=values["amount"],
            ip=(ip or "")[:64],
            user_agent=(user_agent or "")[:300],
        )
        # Only an active autopay keeps its card; any other needs a card payment.
        needs_card = autopay.state != "active" or autopay.parent_id is None
        if needs_card:
            Autopay.update(state="binding").where(Autopay.id == autopay.id).execute()
    return needs_card


def start_binding(contract, amount, url_ok, url_no, language="ru"):
    """Start the card payment whose order becomes the parent of recurrent charges."""
    autopay = autopay_of(contract)
    if autopay is None:
        raise NotFound("no_autopay")
    transaction, form = payments.start_payment(
        contract, amount, url_ok, url_no, language, source="autopay", kind="bind"
    )
    Autopay.update(binding=transaction, updated_at=utcnow()).where(
        Autopay.id == autopay.id
    ).execute()
    return transaction, form


def bind_succeeded(transaction):
    """Make a successful binding payment the parent and autopay active (in a unit)."""
    autopay = Autopay.get_or_none(Autopay.binding == transaction)
    if autopay is None or autopay.state == "off":
        return
    Autopay.update(
        parent=transaction,
        binding=None,
        state="active",
        suspended_reason=None,
        active_since=autopay.active_since or utcnow(),
        updated_at=utcnow(),
    ).where(Autopay.id == autopay.id).execute()
    notify(
        autopay.contract,
        "autopay_active",
        _l(
            "Autopay is on. Card payment %(order)s will be used for future charges.",
            order=transaction.order_id,
        ),
    )


def turn_off(contract, who="subscriber"):
    """Stop future charges at once; charges not yet sent are canceled."""
    with write_unit():
        autopay = autopay_of(contract)
        if autopay is None:
            raise NotFound("no_autopay")
        Autopay.update(state="off", binding=None, updated_at=utcnow()).where(
            Autopay.id == autopay.id
        ).execute()
        AutopayCharge.update(
            status="canceled",
            result_message=f"turned off by {who}",
            updated_at=utcnow(),
        ).where(
            AutopayCharge.autopay == autopay, AutopayCharge.status.in_(("due", "retry"))
        ).execute()


# --- charges asked for by the provider (automatic mode) -------------------------


def request_charge(contract, amount, reason="", source="api", key=None):
    """Ask for one automatic-mode charge of a contract; return the AutopayCharge.

    `key` makes the request idempotent: the same key asks for the same charge.
    """
    if isinstance(contract, str):
        contract = Contract.by_number(contract)
        if contract is None:
            raise NotFound("unknown_contract")
    autopay = autopay_of(contract)
    if autopay is None or autopay.mode != "automatic" or autopay.state != "active":
        raise AutopayError("not_automatic")
    _, configuration = acquirer.payment_gateway(contract)
    low, high = acquirer.amount_limits(configuration)
    if not isinstance(amount, int) or not low <= amount <= high:
        raise CabinetError("amount_out_of_range", low=low, high=high)
    if key is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,48}", key):
        raise CabinetError("bad_key")
    period = f"req:{key or uuid.uuid4().hex[:20]}"
    with write_unit():
        charge = _create_charge(autopay, period, local_today(), amount, reason, source)
        if charge is None:
            return AutopayCharge.get(
                AutopayCharge.autopay == autopay, AutopayCharge.period == period
            )
    return charge


def _create_charge(autopay, period, day, amount, reason, source, status="due"):
    """Insert a charge for a period (None if it exists) and enqueue it on commit."""
    try:
        with db.atomic():
            charge = AutopayCharge.create(
                autopay=autopay,
                period=period,
                due_on=day,
                amount=amount,
                reason=(reason or "")[:300] or None,
                source=source,
                status=status,
            )
    except IntegrityError:
        return None
    if status == "due":
        on_commit(lambda: _enqueue_charge(charge.id))
    return charge


def _enqueue_charge(charge_id, delay=None):
    from . import jobs

    queue = get_queue()
    if delay:
        queue.enqueue_in(timedelta(seconds=delay), jobs.charge_autopay, charge_id)
    else:
        queue.enqueue(jobs.charge_autopay, charge_id, job_timeout=600)


# --- the daily run ---------------------------------------------------------------


def run(now=None):
    """Plan what is due (with catch-up), retry soft declines, resolve stuck charges."""
    now = now or utcnow()
    today = local_today(now)
    stats = Stats()
    window = [
        today - timedelta(days=n)
        for n in range(current_app.config["AUTOPAY_CATCH_UP_DAYS"] - 1, -1, -1)
    ]
    automatic = list(
        Autopay.select(Autopay, Contract)
        .join(Contract)
        .where(Autopay.state == "active", Autopay.mode == "automatic")
    )
    proposals = []
    for autopay in automatic:
        stats.looked_at += 1
        try:
            configuration = acquirer.payment_gateway(autopay.contract)[1]
        except CabinetError:
            continue  # unlinked or no configuration: nothing can be charged
        if autopay.mode not in allowed_modes(configuration):
            continue
        proposal = _policy(autopay, configuration)
        if proposal:
            proposals.append(proposal)
    stats.changed += _plan_scheduled(window, stats)
    events.automatic_charges.send(today, proposals=proposals)
    stats.changed += _plan_automatic(proposals, today)
    stats.changed += _retry_due(today)
    # Staleness is judged by the clock, whatever day the run plans for.
    _requeue_lost(utcnow(), stats)
    _resolve_stuck(utcnow(), stats)
    _remind(today)
    return stats


def _payable_modes():
    """Map each instance whose active configuration can charge to its allowed modes."""
    modes = {}
    for configuration in ModuleConfiguration.select().where(
        ModuleConfiguration.is_active == True  # noqa: E712
    ):
        if not module_params.missing_for_payments(configuration.params):
            modes[configuration.instance_id] = allowed_modes(configuration)
    return modes


def _plan_scheduled(window, stats):
    """Create the weekly/monthly charges due in the window, in bulk; count them.

    A few queries per thousand autopays instead of several per autopay: the
    unique (autopay, period) index still makes a charge happen once.
    """
    modes = _payable_modes()
    due = []  # (autopay id, period, day, amount)
    for autopay in (
        Autopay.select(
            Autopay.id,
            Autopay.mode,
            Autopay.weekday,
            Autopay.day_of_month,
            Autopay.amount,
            Autopay.active_since,
            Autopay.created_at,
            Contract.instance.alias("instance_id"),
        )
        .join(Contract)
        .where(Autopay.state == "active", Autopay.mode.in_(("weekly", "monthly")))
        .namedtuples()
    ):
        stats.looked_at += 1
        if autopay.mode not in modes.get(autopay.instance_id, ()):
            continue  # unlinked, no usable configuration, or the mode is not allowed
        since = local_date(autopay.active_since or autopay.created_at)
        due += [
            (autopay.id, period_of(autopay, day), day, autopay.amount)
            for day in window
            if day >= since and due_on(autopay, day)
        ]
    periods = list({period for _, period, _, _ in due})
    charged = (
        set(
            AutopayCharge.select(AutopayCharge.autopay, AutopayCharge.period)
            .where(AutopayCharge.period.in_(periods))
            .tuples()
        )
        if periods
        else ()
    )
    due = [item for item in due if item[:2] not in charged]
    planned = 0
    for start in range(0, len(due), PLAN_BATCH):
        rows = _decide(due[start : start + PLAN_BATCH])
        with write_unit():
            created = _insert_charges(rows)
            queued = [pk for pk, status in created if status == "due"]
            on_commit(lambda queued=queued: _enqueue_charges(queued))
        planned += len(created)
    return planned


_INSERTED = (
    "autopay",
    "period",
    "due_on",
    "amount",
    "reason",
    "source",
    "status",
    "tries",
    "created_at",
    "updated_at",
)


def _charges_insert(count, slot):
    """Build the insert of `count` charge rows that skips existing (autopay, period)."""
    fields = [AutopayCharge._meta.fields[name] for name in _INSERTED]
    return (
        AutopayCharge.insert_many(
            [{f: slot(f"{f.name}{n}", f) for f in fields} for n in range(count)]
        )
        .on_conflict_ignore()
        .returning(AutopayCharge.id, AutopayCharge.status)
    )


# Built through peewee's query nodes each time, a batch's INSERT cost more than the
# database's own work (a third of a 100,000-charge run): the full batch is built
# once per database: (its row count, the prepared insert).
_FULL_BATCH_INSERT = (PLAN_BATCH, Prepared(partial(_charges_insert, PLAN_BATCH)))


def _insert_charges(rows):
    """Insert charge rows, skipping (autopay, period) pairs that exist; (id, status)."""
    if not rows:
        return []
    count, insert = _FULL_BATCH_INSERT
    if len(rows) != count:
        insert = Prepared(partial(_charges_insert, len(rows)))
    now = utcnow()
    return insert.tuples(
        **{
            f"{name}{n}": value
            for n, row in enumerate(rows)
            for name, value in {
                **row,
                "tries": 0,
                "created_at": now,
                "updated_at": now,
            }.items()
        }
    )


def _decide(due):
    """Make the charge rows of due (autopay, period, day, amount), asking the hook."""
    hooked = bool(events.before_charge.receivers)
    if hooked:  # the hook is given the autopay (and its contract) as a model
        autopays = {
            a.id: a
            for a in Autopay.select(Autopay, Contract)
            .join(Contract)
            .where(Autopay.id.in_([item[0] for item in due]))
        }
    rows = []
    for autopay_id, period, day, amount in due:
        row = {
            "autopay": autopay_id,
            "period": period,
            "due_on": day,
            "amount": amount,
            "source": "schedule",
            "status": "due",
            "reason": None,
        }
        if hooked:
            decision = events.ChargeDecision(amount=amount)
            events.before_charge.send(autopays[autopay_id], decision=decision)
            if decision.skipped:
                row["status"] = "skipped"
            else:
                row["amount"] = int(decision.amount)
            row["reason"] = (decision.reason or "")[:300] or None
        rows.append(row)
    return rows


def _enqueue_charges(charge_ids):
    """Enqueue the charges' jobs, one Redis pipeline per batch."""
    from rq import Queue

    from . import jobs

    queue = get_queue()
    for start in range(0, len(charge_ids), PLAN_BATCH):
        queue.enqueue_many(
            [
                Queue.prepare_data(jobs.charge_autopay, (charge_id,), timeout=600)
                for charge_id in charge_ids[start : start + PLAN_BATCH]
            ]
        )


def _policy(autopay, configuration):
    """The built-in automatic policy: below the threshold, top up to the target."""
    p = module_params.effective(configuration.params)
    if not p["auto_threshold"] or not p["auto_target"]:
        return None
    threshold, target = to_kopecks(p["auto_threshold"]), to_kopecks(p["auto_target"])
    balance = autopay.contract.balance
    if balance >= threshold:
        return None
    return events.AutomaticCharge(
        autopay.contract.number,
        target - balance,
        f"balance {format_human(balance)} below {format_human(threshold)}",
    )


def _plan_automatic(proposals, today):
    """Create today's automatic-mode charges (at most one per contract and day)."""
    planned = 0
    for proposal in proposals:
        contract = Contract.by_number(proposal.contract_number)
        autopay = autopay_of(contract) if contract else None
        if autopay is None or autopay.mode != "automatic" or autopay.state != "active":
            log.warning(
                "automatic charge for %s ignored: not in automatic mode",
                proposal.contract_number,
            )
            continue
        with write_unit():
            planned += (
                _create_charge(
                    autopay,
                    f"auto:{today.isoformat()}",
                    today,
                    proposal.amount,
                    proposal.reason,
                    "policy",
                )
                is not None
            )
    return planned


def _retry_due(today):
    """Put softly declined charges whose retry day has come back in the queue."""
    ids = [
        c.id
        for c in AutopayCharge.select(AutopayCharge.id).where(
            AutopayCharge.status == "retry", AutopayCharge.next_try_on <= today
        )
    ]
    for charge_id in ids:
        with write_unit():
            if (
                AutopayCharge.update(status="due", updated_at=utcnow())
                .where(AutopayCharge.id == charge_id, AutopayCharge.status == "retry")
                .execute()
            ):
                on_commit(lambda charge_id=charge_id: _enqueue_charge(charge_id))
    return len(ids)


def _requeue_lost(now, stats):
    """Enqueue again due charges whose job vanished (Redis flushed or restarted)."""
    # The database, not RQ, says what is due; a second job for one charge is
    # harmless, as only one worker can claim it.
    lost = AutopayCharge.select(AutopayCharge.id).where(
        AutopayCharge.status.in_(("due", "resend")),
        AutopayCharge.updated_at < now - STUCK_AFTER,
    )
    for charge in lost:
        _enqueue_charge(charge.id)
        stats.notes.append(f"charge {charge.id} due again: re-enqueued")


def _resolve_stuck(now, stats):
    """Ask about charges left `sending` (a worker died, an answer was lost)."""
    from . import jobs

    stuck = AutopayCharge.select(AutopayCharge.id).where(
        AutopayCharge.status == "sending", AutopayCharge.updated_at < now - STUCK_AFTER
    )
    for charge in stuck:
        get_queue().enqueue(jobs.resolve_autopay_charge, charge.id)
        stats.notes.append(f"charge {charge.id} stuck: resolving")


def _remind(today):
    """Tell subscribers N days ahead of a weekly/monthly charge (if enabled)."""
    days = current_app.config["AUTOPAY_REMIND_DAYS"]
    if days <= 0:
        return
    day = today + timedelta(days=days)
    for autopay in Autopay.select().where(
        Autopay.state == "active", Autopay.mode.in_(("weekly", "monthly"))
    ):
        if due_on(autopay, day) and not _charged(autopay, period_of(autopay, day)):
            notify(
                autopay.contract,
                "autopay_reminder",
                _l(
                    "On %(day)s autopay will charge %(amount)s ₽ to your card.",
                    day=day.strftime("%d.%m.%Y"),
                    amount=format_human(autopay.amount),
                ),
            )


# --- one charge -------------------------------------------------------------------


def kill_point(name):
    """Die at once (SIGKILL) here if CABINET_KILL_AT names this point; else nothing."""
    # Only the fault suite sets it (scenario 9: a worker killed before sending,
    # after sending, or with the answer's recording uncommitted).
    if os.environ.get("CABINET_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def charge(charge_id):
    """Send one try of a due charge to /recurrent/ and record what it said."""
    prepared = _prepare_try(charge_id)
    if prepared is None:
        return None
    transaction, configuration, parent_order_id = prepared
    client = acquirer.client_for(configuration)
    shop = configuration.params.get("shop_id", "")
    slots = ConcurrencySlots(
        get_redis(),
        f"cabinet:recurrent:{shop}",
        current_app.config["RECURRENT_CONCURRENCY"],
        # A worker killed mid-request frees its slot once no request of its
        # could still be running: the client's timeout and a margin.
        hold_seconds=client.timeout + 15,
    )
    if not slots.acquire(timeout=60):
        _back_to_due(charge_id, "no free slot within Uniteller's concurrency limit")
        return "deferred"
    try:
        kill_point("before_send")
        answer = client.recurrent(
            transaction.order_id, transaction.amount, parent_order_id
        )
        kill_point("after_send")
    except OperationRefused as exc:
        return _refused(charge_id, transaction, exc)
    except UnitellerError as exc:
        log.warning(
            "recurrent %s: %s; resolving through /results/", transaction.order_id, exc
        )
        _enqueue_resolve(charge_id)
        return "unknown"
    finally:
        slots.release()
    success = answer.get("Response_Code") == "AS000"
    word = (answer.get("Status") or "Paid") if success else "Not Authorized"
    payments.apply_status(
        transaction.order_id,
        word,
        source="recurrent",
        fields=answer,
        instance=transaction.instance,
    )
    return AutopayCharge.get_by_id(charge_id).status


class _ClaimLost(Exception):
    """Another worker claimed the charge first."""


def _prepare_try(charge_id):
    """Claim a due charge and write its try's transaction; None if not ours to send.

    Returns (transaction, configuration, the parent's order id): all a try needs.
    """
    try:
        return _claim(charge_id)
    except (_ClaimLost, IntegrityError):
        return None  # the try's order id or the claim went to another worker


def _claim(charge_id):
    """Claim a charge in one unit (see _prepare_try)."""
    with write_unit():
        charge = AutopayCharge.get_or_none(AutopayCharge.id == charge_id)
        if charge is None or charge.status not in ("due", "resend"):
            return None
        autopay = charge.autopay
        if autopay.state != "active" or autopay.parent_id is None:
            AutopayCharge.update(
                status="canceled",
                updated_at=utcnow(),
                result_message=f"autopay is {autopay.state}",
            ).where(AutopayCharge.id == charge.id).execute()
            return None
        try:
            configuration = acquirer.payment_gateway(autopay.contract)[1]
        except CabinetError as exc:
            AutopayCharge.update(
                status="canceled", updated_at=utcnow(), result_message=exc.message
            ).where(AutopayCharge.id == charge.id).execute()
            return None
        if charge.status == "resend":
            # Uniteller never saw this try: the same order id goes again.
            transaction = charge.transaction
        else:
            if _failed_today(autopay) >= FAILED_PER_PARENT_PER_DAY:
                AutopayCharge.update(
                    status="retry",
                    next_try_on=local_today() + timedelta(days=1),
                    updated_at=utcnow(),
                    result_message="Uniteller's limit of failed charges per day",
                ).where(AutopayCharge.id == charge.id).execute()
                return None
            tries = charge.tries + 1
            order_id = (
                f"R{autopay.id}-{re.sub(r'[^A-Za-z0-9]', '', charge.period)}-{tries}"
            )
            charge.tries = tries
            transaction = payments.create_recurrent(charge, order_id, configuration)
        claimed = (
            AutopayCharge.update(
                status="sending",
                tries=charge.tries,
                transaction=transaction,
                updated_at=utcnow(),
            )
            .where(AutopayCharge.id == charge.id, AutopayCharge.status == charge.status)
            .execute()
        )
        if not claimed:
            raise _ClaimLost
        parent_order_id = autopay.parent.order_id
    return transaction, configuration, parent_order_id


def _failed_today(autopay):
    """Count today's failed recurrent charges of the contract (its one card)."""
    tz = ZoneInfo(current_app.config["TIMEZONE"])
    start = datetime.combine(local_today(), datetime.min.time(), tzinfo=tz)
    start = start.astimezone(UTC).replace(tzinfo=None)
    return (
        Transaction.select()
        .where(
            Transaction.contract == autopay.contract_id,
            Transaction.kind == "recurrent",
            Transaction.status == "failed",
            Transaction.updated_at >= start,
        )
        .count()
    )


def _back_to_due(charge_id, why):
    """Return a claimed charge to the queue (nothing was sent)."""
    with write_unit():
        AutopayCharge.update(
            status="resend", result_message=why, updated_at=utcnow()
        ).where(
            AutopayCharge.id == charge_id, AutopayCharge.status == "sending"
        ).execute()
        on_commit(lambda: _enqueue_charge(charge_id, delay=30))


def _refused(charge_id, transaction, exc):
    """Record an ErrorCode answer: unknown outcome, or a refusal of this try."""
    if exc.code in UNKNOWN_ERRORS:
        # 24: this order id reached Uniteller before; 15/28: no result yet.
        _enqueue_resolve(charge_id)
        return "unknown"
    payments.apply_status(
        transaction.order_id,
        "Not Authorized",
        source="recurrent",
        fields={"Response_Code": f"E{exc.code}", "Message": exc.message},
        instance=transaction.instance,
    )
    return AutopayCharge.get_by_id(charge_id).status


def _enqueue_resolve(charge_id):
    from . import jobs

    get_queue().enqueue_in(
        timedelta(seconds=current_app.config["RESOLVE_DELAY"]),
        jobs.resolve_autopay_charge,
        charge_id,
    )


def resolve(charge_id):
    """Find out what became of a try whose answer we do not know, via /results/."""

    charge = AutopayCharge.get_or_none(AutopayCharge.id == charge_id)
    if charge is None:
        return None
    if charge.status != "sending":
        return charge.status  # settled meanwhile (a callback, the status check)
    transaction = charge.transaction
    if transaction.status == "new":
        client = acquirer.client_for(transaction.configuration)
        rows = acquirer.ask_results(
            client,
            acquirer.results_spacing(transaction.configuration),
            TaskStats(),
            order_id=transaction.order_id,
        )
        row = next(
            (r for r in rows if r.get("OrderNumber") == transaction.order_id), None
        )
        if row is None:
            # Uniteller never got it: sending the same order id again is safe
            # (if it did arrive meanwhile, the answer is error 24).
            _back_to_due(charge_id, "unknown to Uniteller: sending again")
            return "resend"
        payments.apply_status(
            transaction.order_id,
            row.get("Status"),
            source="status",
            fields=row,
            instance=transaction.instance,
        )
    else:
        settle_try(transaction)  # a callback or the status check got there first
    return AutopayCharge.get_by_id(charge_id).status


def settle_try(transaction):
    """Finish the charge of a recurrent try that succeeded or failed (in a unit)."""
    charge = AutopayCharge.get_or_none(AutopayCharge.transaction == transaction)
    if charge is None or charge.status not in ("sending", "resend"):
        return
    kill_point("before_record")
    autopay = charge.autopay
    if transaction.status in ("authorized", "paid"):
        _finish(charge, "succeeded", transaction)
        notify(
            autopay.contract,
            "charge_succeeded",
            _l(
                "Autopay charged %(amount)s ₽ to your card.",
                amount=format_human(charge.amount),
            ),
        )
        on_commit(
            lambda: events.charge_succeeded.send(AutopayCharge.get_by_id(charge.id))
        )
        return
    if transaction.status != "failed":
        return
    code = (transaction.response_code or "").upper()
    message = transaction.message or ""
    hard = (
        code in HARD_RESPONSE_CODES
        or "F01" in message.upper()
        or code.lstrip("E").isdigit()
        and int(code.lstrip("E")) in HARD_ERRORS
    )
    retry_days = int(
        module_params.effective(transaction.configuration.params)["autopay_retry_days"]
    )
    if not hard and charge.tries <= retry_days:
        _finish(
            charge, "retry", transaction, next_try_on=local_today() + timedelta(days=1)
        )
        notify(
            autopay.contract,
            "charge_failed",
            _l(
                "Autopay could not charge %(amount)s ₽ (%(reason)s). "
                "We will try again tomorrow.",
                amount=format_human(charge.amount),
                reason=message or code,
            ),
        )
        return
    _finish(charge, "failed", transaction)
    notify(
        autopay.contract,
        "charge_failed",
        _l(
            "Autopay could not charge %(amount)s ₽ (%(reason)s).",
            amount=format_human(charge.amount),
            reason=message or code,
        ),
    )
    on_commit(lambda: events.charge_failed.send(AutopayCharge.get_by_id(charge.id)))
    if hard:
        suspend(autopay, message or code)


def _finish(charge, status, transaction, next_try_on=None):
    AutopayCharge.update(
        status=status,
        next_try_on=next_try_on,
        result_code=transaction.response_code,
        result_message=transaction.message,
        updated_at=utcnow(),
    ).where(
        AutopayCharge.id == charge.id, AutopayCharge.status.in_(("sending", "resend"))
    ).execute()


def suspend(autopay, reason):
    """Suspend an autopay until the subscriber pays with a new card."""
    changed = (
        Autopay.update(
            state="suspended", suspended_reason=reason[:300], updated_at=utcnow()
        )
        .where(Autopay.id == autopay.id, Autopay.state == "active")
        .execute()
    )
    if changed:
        notify(
            autopay.contract,
            "autopay_suspended",
            _l(
                "Autopay is paused: the card was declined (%(reason)s). "
                "Please set it up again with a new card.",
                reason=reason,
            ),
        )
        on_commit(lambda: events.autopay_suspended.send(Autopay.get_by_id(autopay.id)))


# --- notices -----------------------------------------------------------------------


def notify(contract, kind, text):
    """Leave a notice in the cabinet, and e-mail it when SMTP is set up."""
    notice = Notice.create(contract=contract, kind=kind, text=str(text))
    if current_app.config["SMTP_HOST"] and contract.email:
        from . import jobs

        on_commit(lambda: get_queue().enqueue(jobs.email_notice, notice.id))
    return notice


@payments.transaction_changed.connect
def _on_transaction_changed(transaction, old, outcome):
    """Bind an autopay on its binding payment's credit; settle a recurrent try."""
    if transaction.kind == "bind" and outcome == "credited":
        bind_succeeded(transaction)
    elif transaction.kind == "recurrent":
        settle_try(transaction)
