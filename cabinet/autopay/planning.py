"""Plan the charges: the daily run, automatic mode and charges asked for by the ISP."""

import logging
import re
import uuid
from datetime import timedelta
from functools import partial

from flask import current_app
from peewee import IntegrityError

from .. import acquirer, events
from .. import params as module_params
from ..balances import balance_of
from ..clock import local_date, local_today, utcnow
from ..db import db, write_unit
from ..errors import CabinetError, Conflict, NotFound
from ..models import Autopay, AutopayCharge, Contract, ModuleConfiguration
from ..money import format_human, to_kopecks
from ..prepared import Prepared
from ..task_stats import TaskStats
from . import notices, states
from .calendar import charged, due_on, period_of
from .charging import enqueue_charges, enqueue_resolve
from .setup import AutopayError, allowed_modes, autopay_of

# The package's one logger name, as before it was a package.
log = logging.getLogger("cabinet.autopay")

STUCK_AFTER = timedelta(minutes=10)
PLAN_BATCH = 1000  # charges inserted (and jobs enqueued) at a time by the daily run


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
            charge = AutopayCharge.get(
                AutopayCharge.autopay == autopay, AutopayCharge.period == period
            )
            # The same key is the same request: another amount or reason under
            # it is a mistake to report, not the old charge to hand back.
            if (charge.amount, charge.reason) != (amount, (reason or "")[:300] or None):
                raise Conflict("key_reused", charge=charge.id)
    return charge


def _create_charge(autopay, period, day, amount, reason, source, status=states.DUE):
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
    if status == states.DUE:
        enqueue_charges([charge.id])
    return charge


# --- the daily run ---------------------------------------------------------------


def run(now=None):
    """Plan what is due (with catch-up), retry soft declines, resolve stuck charges."""
    now = now or utcnow()
    today = local_today(now)
    stats = TaskStats()
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
    charged_periods = (
        set(
            AutopayCharge.select(AutopayCharge.autopay, AutopayCharge.period)
            .where(AutopayCharge.period.in_(periods))
            .tuples()
        )
        if periods
        else ()
    )
    due = [item for item in due if item[:2] not in charged_periods]
    planned = 0
    for start in range(0, len(due), PLAN_BATCH):
        rows = _decide(due[start : start + PLAN_BATCH])
        with write_unit():
            created = _insert_charges(rows)
            queued = [pk for pk, status in created if status == states.DUE]
            enqueue_charges(queued)
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
# database's own work: the full batch is built once per database: (its row count,
# the prepared insert).
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
            "status": states.DUE,
            "reason": None,
        }
        if hooked:
            decision = events.ChargeDecision(amount=amount)
            events.before_charge.send(autopays[autopay_id], decision=decision)
            if decision.skipped:
                row["status"] = states.SKIPPED
            else:
                row["amount"] = int(decision.amount)
            row["reason"] = (decision.reason or "")[:300] or None
        rows.append(row)
    return rows


def _policy(autopay, configuration):
    """Propose the built-in automatic charge: below the threshold, top up to target."""
    p = module_params.effective(configuration.params)
    if not p["auto_threshold"] or not p["auto_target"]:
        return None
    threshold, target = to_kopecks(p["auto_threshold"]), to_kopecks(p["auto_target"])
    # The balance the subscriber sees: the billing's when it is known.
    shown = balance_of(autopay.contract)
    balance = shown.amount
    if balance >= threshold:
        return None
    return events.AutomaticCharge(
        autopay.contract.number,
        target - balance,
        f"balance {format_human(balance)} ({shown.describe}) below "
        f"{format_human(threshold)}",
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
            AutopayCharge.status == states.RETRY, AutopayCharge.next_try_on <= today
        )
    ]
    for charge_id in ids:
        with write_unit():
            if states.move(states.DUE, AutopayCharge.id == charge_id):
                enqueue_charges([charge_id])
    return len(ids)


def _requeue_lost(now, stats):
    """Enqueue again due charges whose job vanished (Redis flushed or restarted)."""
    # The database, not RQ, says what is due; a second job for one charge is
    # harmless, as only one worker can claim it.
    lost = AutopayCharge.select(AutopayCharge.id).where(
        AutopayCharge.status.in_(states.CLAIMABLE),
        AutopayCharge.updated_at < now - STUCK_AFTER,
    )
    for charge in lost:
        enqueue_charges([charge.id])
        stats.notes.append(f"charge {charge.id} due again: re-enqueued")


def _resolve_stuck(now, stats):
    """Ask about tries left with an unknown outcome (a worker died, an answer lost)."""
    stuck = AutopayCharge.select(AutopayCharge.id).where(
        AutopayCharge.status == states.UNKNOWN,
        AutopayCharge.updated_at < now - STUCK_AFTER,
    )
    for charge in stuck:
        enqueue_resolve(charge.id)
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
        if due_on(autopay, day) and not charged(autopay, period_of(autopay, day)):
            notices.reminder(autopay.contract, day, autopay.amount)
