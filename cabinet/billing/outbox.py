"""The outbox: write deliveries with the money, send them after commit, sweep.

Never holds a database transaction across a call to a billing: a delivery is
claimed (pending -> sending, committed), sent, and its answer recorded by
compare-and-set on the claim's attempt number.
"""

import json
import logging
import os
import signal
from datetime import datetime, timedelta

from flask import current_app, has_request_context
from peewee import fn

from ..clock import utcnow
from ..db import write_unit
from ..errors import CabinetError, NotFound
from ..extensions import get_redis
from ..models import (
    AuditEntry,
    BillingConnector,
    BillingDelivery,
    DeliveryAttempt,
    LedgerEntry,
    ModuleInstance,
)
from ..pacing import ConcurrencySlots
from ..prepared import Prepared
from ..queueing import enqueue, enqueue_gathered, enqueue_many
from ..task_stats import TaskStats
from . import protocols
from .states import DELIVERY_TRANSITIONS, NEEDS_ATTENTION, backoff

log = logging.getLogger(__name__)

JOB = "deliver_billing"
DISPATCH_JOB = "dispatch_billing"
EVENT_OF_KIND = protocols.EVENT_OF
# A claim is held for the call's timeout plus this: a worker killed mid-call
# leaves `sending`, which the sweep sends again once the lease ran out.
LEASE_MARGIN = timedelta(seconds=60)
# How long a job waits for one of its connector's slots before trying later.
SLOT_WAIT_SECONDS = 30
# The sweep leaves a due delivery this long to its own job before enqueuing it.
SWEEP_GRACE = timedelta(seconds=60)
SWEEP_BATCH = 1000


class DeliveryRefused(CabinetError):
    """An operator's action that does not fit the delivery's state."""

    status_code = 409


def kill_point(name):
    """Die at once (SIGKILL) here if CABINET_KILL_AT names this point; else nothing."""
    # Only the fault suite sets it: a worker killed between the billing's answer
    # and our record of it.
    if os.environ.get("CABINET_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


# --- writing, in the unit that moved the money -------------------------------------


# Built once per database: each credit runs both (Prepared, README "Benchmarks").
_ACTIVE_CONNECTORS = Prepared(
    lambda slot: BillingConnector.select(
        BillingConnector.id, BillingConnector.kind, BillingConnector.params
    ).where(
        BillingConnector.instance == slot("instance"),
        BillingConnector.is_active == True,  # noqa: E712
    )
)
_DELIVERY_INSERT = Prepared(
    lambda slot: BillingDelivery.insert(
        {
            BillingDelivery.connector: slot("connector"),
            BillingDelivery.transaction: slot("transaction"),
            BillingDelivery.refund: slot("refund"),
            BillingDelivery.kind: slot("kind"),
            BillingDelivery.key: slot("key"),
            BillingDelivery.amount: slot("amount"),
            BillingDelivery.account: slot("account"),
            # Every time is a slot: a default would be taken once, when built.
            BillingDelivery.created_at: slot("now", BillingDelivery.created_at),
            BillingDelivery.updated_at: slot("now", BillingDelivery.updated_at),
            BillingDelivery.next_attempt_at: slot(
                "now", BillingDelivery.next_attempt_at
            ),
        }
    ).returning(BillingDelivery.id)
)


def record_deliveries(transaction, kind, amount, refund_id=None):
    """Write a delivery to each active connector of the transaction's instance.

    Call inside the write unit of the ledger entry; the jobs are enqueued once
    it commits. `amount` None: what the ledger's reversal entry took back.
    """
    # Plain rows: no model built, params read only where a webhook needs them.
    connectors = _ACTIVE_CONNECTORS.tuples(instance=transaction.instance_id)
    if not connectors:
        return []
    if amount is None:
        amount = -int(
            LedgerEntry.select(LedgerEntry.amount)
            .where(LedgerEntry.key == f"reversal:{transaction.order_id}")
            .scalar()
            or 0
        )
    key = f"{kind}:{refund_id if kind == 'refund' else transaction.id}"
    now = utcnow()
    made = []
    for connector_id, connector_kind, params in connectors:
        if connector_kind == "webhook" and EVENT_OF_KIND[kind] not in (
            json.loads(params or "{}").get("events", "").split()
        ):
            continue
        ((pk,),) = _DELIVERY_INSERT.tuples(
            connector=connector_id,
            transaction=transaction.id,
            refund=refund_id,
            kind=kind,
            key=key,
            amount=amount,
            account=transaction.contract.number,
            now=now,
        )
        made.append(pk)
    if not made:
        return made
    if has_request_context():
        # A callback: gathered with other requests' into one dispatch job; the
        # sweep finds any a crash of this process lost before they went.
        enqueue_gathered(DISPATCH_JOB, made)
    else:
        enqueue_many(JOB, [(pk,) for pk in made])
    return made


def dispatch(delivery_ids):
    """Enqueue one delivery job per id (the gathered job of record_deliveries)."""
    enqueue_many(JOB, [(pk,) for pk in delivery_ids])


# --- sending -------------------------------------------------------------------------


def _retry_days():
    return current_app.config["BILLING_RETRY_DAYS"]


def _claim(delivery_id):
    """Take a due delivery for sending (committed); return (delivery, why not)."""
    now = utcnow()
    with write_unit():
        delivery = BillingDelivery.get_or_none(BillingDelivery.id == delivery_id)
        if delivery is None:
            return None, "missing"
        due = delivery.state == "pending" and delivery.next_attempt_at <= now + (
            timedelta(seconds=2)  # a delayed job may come a moment early
        )
        lapsed = delivery.state == "sending" and (
            delivery.lease_until is None or delivery.lease_until < now
        )
        if not (due or lapsed):
            return None, delivery.state
        connector = delivery.connector
        if not connector.is_active:
            return None, "connector off"  # held until it is switched on again
        if delivery.kind != "credit":
            blocked = _before_its_credit(delivery, connector)
            if blocked:
                return None, blocked
        timeout = timedelta(seconds=float(connector.params.get("timeout", 30)))
        lease = now + timeout * (
            2 if connector.params.get("check_first") == "yes" else 1
        )
        lease += timedelta(seconds=SLOT_WAIT_SECONDS) + LEASE_MARGIN
        claimed = (
            BillingDelivery.update(
                state="sending",
                attempts=BillingDelivery.attempts + 1,
                lease_until=lease,
                updated_at=now,
            )
            .where(
                BillingDelivery.id == delivery.id,
                BillingDelivery.state == delivery.state,
                BillingDelivery.attempts == delivery.attempts,
                BillingDelivery.state.in_(DELIVERY_TRANSITIONS["sending"]),
            )
            .execute()
        )
        if not claimed:
            return None, "taken"
    delivery.attempts += 1
    delivery.state = "sending"
    return delivery, None


def _before_its_credit(delivery, connector):
    """Hold a reversal or refund until its credit is done; None when it may go."""
    credit = BillingDelivery.get_or_none(
        BillingDelivery.connector == connector,
        BillingDelivery.key == f"credit:{delivery.transaction_id}",
    )
    why = None
    if credit is None:
        why = "its credit was never delivered through this connector"
    elif connector.kind == "osmp" and connector.params.get("cancel") != "yes":
        why = "this connector does not cancel: take it back in the billing by hand"
    elif connector.kind == "osmp" and delivery.amount != credit.amount:
        why = "OSMP cancels a whole payment only: take the part back by hand"
    if why:
        _set_attention(delivery, why)
        return "attention"
    if credit.state != "done":
        # Not before its credit: the credit's record enqueues it again.
        return "waiting for its credit"
    delivery.credit_prv_txn = credit.prv_txn or ""
    return None


def _set_attention(delivery, why):
    BillingDelivery.update(
        state="attention", note=why[:500], updated_at=utcnow()
    ).where(
        BillingDelivery.id == delivery.id,
        BillingDelivery.state.in_(DELIVERY_TRANSITIONS["attention"]),
    ).execute()


def deliver(delivery_id):
    """Send one delivery to its billing and record the answer (safe to run twice)."""
    delivery, why_not = _claim(delivery_id)
    if delivery is None:
        return why_not
    connector = delivery.connector
    slots = ConcurrencySlots(
        get_redis(),
        f"cabinet:billing:slots:{connector.id}",
        int(connector.params.get("concurrency", 4)),
        hold_seconds=float(connector.params.get("timeout", 30)) * 2 + 10,
    )
    if not slots.acquire(timeout=SLOT_WAIT_SECONDS):
        _release(delivery, "no free slot of the connector's concurrency")
        return "deferred"
    try:
        result = protocols.send(connector, delivery)
    finally:
        slots.release()
    kill_point("billing_after_answer")
    return _record(delivery, result)


def _release(delivery, note):
    """Give a claim back untried: pending again, at once."""
    with write_unit():
        BillingDelivery.update(
            state="pending",
            attempts=BillingDelivery.attempts - 1,
            note=note,
            updated_at=utcnow(),
        ).where(
            BillingDelivery.id == delivery.id,
            BillingDelivery.state == "sending",
            BillingDelivery.attempts == delivery.attempts,
        ).execute()
        enqueue(JOB, delivery.id, delay=1)


def _record(delivery, result):
    """Record an answer by compare-and-set on the claim; return the new state."""
    now = utcnow()
    changes = {"last_answer": result.answer[:2000], "updated_at": now}
    if result.outcome == "done":
        state = "done"
        changes.update(done_at=now, prv_txn=result.prv_txn, note=None)
    elif result.outcome == "retry":
        wait = timedelta(seconds=backoff(delivery.attempts))
        if now + wait > delivery.created_at + timedelta(days=_retry_days()):
            state = "failed"
            changes["note"] = f"retries exhausted after {_retry_days()} days"
        else:
            state = "pending"
            changes["next_attempt_at"] = now + wait
    else:
        state = "failed"
        changes["note"] = "the billing refused it"
    with write_unit():
        recorded = (
            BillingDelivery.update(state=state, **changes)
            .where(
                BillingDelivery.id == delivery.id,
                BillingDelivery.state == "sending",
                BillingDelivery.attempts == delivery.attempts,
            )
            .execute()
        )
        DeliveryAttempt.create(
            delivery=delivery.id,
            number=delivery.attempts,
            request=result.request[:2000],
            answer=result.answer[:2000],
            outcome=result.outcome if recorded else "late",
        )
        if not recorded:
            return "late"
        if state == "pending":
            enqueue(JOB, delivery.id, delay=wait.total_seconds())
        elif state == "done" and delivery.kind == "credit":
            _release_followers(delivery)
    if state == "failed":
        log.warning(
            "billing delivery #%d (%s) failed: %s",
            delivery.id,
            delivery.kind,
            result.answer[:200],
        )
    return state


def _release_followers(credit):
    """Enqueue the reversals and refunds that waited for this credit."""
    waiting = (
        BillingDelivery.select(BillingDelivery.id)
        .where(
            BillingDelivery.connector == credit.connector_id,
            BillingDelivery.transaction == credit.transaction_id,
            BillingDelivery.kind != "credit",
            BillingDelivery.state == "pending",
        )
        .tuples()
    )
    ids = [(pk,) for (pk,) in waiting]
    if ids:
        enqueue_many(JOB, ids)


# --- the sweep ----------------------------------------------------------------------


def sweep(now=None):
    """Enqueue deliveries no job sent: due and left over, or claims that died."""
    now = now or utcnow()
    stats = TaskStats()
    found = (
        BillingDelivery.select(BillingDelivery.id)
        .join(BillingConnector)
        .where(BillingConnector.is_active == True)  # noqa: E712
        .where(
            (
                (BillingDelivery.state == "pending")
                & (BillingDelivery.next_attempt_at <= now - SWEEP_GRACE)
            )
            | (
                (BillingDelivery.state == "sending")
                & (BillingDelivery.lease_until < now)
            )
        )
        .order_by(BillingDelivery.id)
        .limit(SWEEP_BATCH)
        .tuples()
    )
    ids = [(pk,) for (pk,) in found]
    stats.looked_at = len(ids)
    stats.changed = len(ids)
    if ids:
        enqueue_many(JOB, ids)
    return stats


# --- what operators see and do ------------------------------------------------------


def deliveries(state=None, transaction=None, limit=200):
    """Select deliveries, newest first, optionally of one state or transaction."""
    query = BillingDelivery.select()
    if state:
        query = query.where(BillingDelivery.state == state)
    if transaction is not None:
        query = query.where(BillingDelivery.transaction == transaction)
    return query.order_by(BillingDelivery.id.desc()).limit(limit)


def connector_figures(instance, now=None):
    """Each connector of an instance with its last delivery and its error rate.

    The error rate is the share of calls in the last 24 hours that did not end
    done (temporary failures included).
    """
    since = (now or utcnow()) - timedelta(hours=24)
    figures = []
    for connector in (
        BillingConnector.select()
        .where(BillingConnector.instance == instance)
        .order_by(BillingConnector.name)
    ):
        last = (
            BillingDelivery.select()
            .where(BillingDelivery.connector == connector)
            .order_by(BillingDelivery.id.desc())
            .first()
        )
        outcomes = list(
            DeliveryAttempt.select(DeliveryAttempt.outcome)
            .join(BillingDelivery)
            .where(
                BillingDelivery.connector == connector,
                DeliveryAttempt.created_at >= since,
            )
            .tuples()
        )
        failed = sum(outcome != "done" for (outcome,) in outcomes)
        figures.append(
            {
                "connector": connector,
                "last": last,
                "calls": len(outcomes),
                "error_rate": failed / len(outcomes) if outcomes else None,
                "waiting": BillingDelivery.select()
                .where(
                    BillingDelivery.connector == connector,
                    BillingDelivery.state.in_(("pending", "sending")),
                )
                .count(),
            }
        )
    return figures


def delivery_counts(now=None):
    """Count deliveries by connector and state; the oldest pending one's age (s)."""
    rows = (
        BillingDelivery.select(
            ModuleInstance.code,
            BillingConnector.name,
            BillingDelivery.state,
            fn.COUNT(BillingDelivery.id),
        )
        .join(BillingConnector)
        .join(ModuleInstance)
        .group_by(ModuleInstance.code, BillingConnector.name, BillingDelivery.state)
        .tuples()
    )
    oldest = (
        BillingDelivery.select(fn.MIN(BillingDelivery.created_at))
        .where(BillingDelivery.state.in_(("pending", "sending")))
        .scalar()
    )
    if isinstance(oldest, str):  # SQLite's MIN() gives the text back
        oldest = datetime.fromisoformat(oldest)
    age = (now or utcnow()) - oldest if oldest else timedelta(0)
    return [(f"{code}/{name}", state, n) for code, name, state, n in rows], int(
        age.total_seconds()
    )


def attempts_of(delivery):
    """List a delivery's calls to the billing, oldest first."""
    return list(
        DeliveryAttempt.select()
        .where(DeliveryAttempt.delivery == delivery)
        .order_by(DeliveryAttempt.id)
    )


def attention(limit=200):
    """Select what needs an operator: final errors, exhausted retries, by-hand cases."""
    return (
        BillingDelivery.select()
        .where(BillingDelivery.state.in_(NEEDS_ATTENTION))
        .order_by(BillingDelivery.id)
        .limit(limit)
    )


def _get(delivery_id):
    delivery = BillingDelivery.get_or_none(BillingDelivery.id == delivery_id)
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id}")
    return delivery


def _audit(who, action, delivery, before, after):
    operator = who if not isinstance(who, str) else None
    AuditEntry.create(
        operator=operator,
        login=operator.login if operator else who,
        action=action,
        object_type="billing_delivery",
        object_id=str(delivery.id),
        before=before,
        after=after,
    )


def _operator_change(delivery_id, who, action, state, allowed, **changes):
    """Move a delivery an operator acts on, by compare-and-set, audited."""
    with write_unit():
        delivery = _get(delivery_id)
        if delivery.state not in allowed:
            raise DeliveryRefused(f"delivery {delivery.id} is {delivery.state}")
        changed = (
            BillingDelivery.update(state=state, updated_at=utcnow(), **changes)
            .where(
                BillingDelivery.id == delivery.id,
                BillingDelivery.state == delivery.state,
            )
            .execute()
        )
        if not changed:
            raise DeliveryRefused(f"delivery {delivery.id} changed meanwhile")
        _audit(
            who,
            action,
            delivery,
            {"state": delivery.state, "account": delivery.account},
            {"state": state, **{k: str(v) for k, v in changes.items()}},
        )
        if state == "pending":
            enqueue(JOB, delivery.id)
    return BillingDelivery.get_by_id(delivery.id)


def retry(delivery_id, who="cli"):
    """Send a failed or held delivery again now (the same txn_id)."""
    return _operator_change(
        delivery_id,
        who,
        "billing_delivery.retry",
        "pending",
        NEEDS_ATTENTION,
        next_attempt_at=utcnow(),
    )


def mark_done(delivery_id, comment, who="cli"):
    """Record that a delivery was made in the billing by hand, with why."""
    comment = (comment or "").strip()
    if not comment:
        raise CabinetError("a comment saying what was done in the billing")
    return _operator_change(
        delivery_id,
        who,
        "billing_delivery.done",
        "done",
        NEEDS_ATTENTION,
        done_at=utcnow(),
        note=comment[:500],
    )


def readdress(delivery_id, account, who="cli"):
    """Send a failed delivery again to a corrected account."""
    account = (account or "").strip()
    if not account or len(account) > 64 or any(ord(c) < 32 for c in account):
        raise CabinetError("an account of 1 to 64 printable characters")
    return _operator_change(
        delivery_id,
        who,
        "billing_delivery.readdress",
        "pending",
        NEEDS_ATTENTION,
        account=account,
        next_attempt_at=utcnow(),
    )
