"""Apply what Uniteller reports: the one path that writes a payment's status."""

import logging
from dataclasses import dataclass
from functools import partial

from peewee import fn

from ..clock import utcnow
from ..db import write_unit
from ..models import Contract, Transaction
from ..money import AmountError, to_kopecks
from ..prepared import Prepared
from ..uniteller.client import normalize_status
from . import ledger
from .history import event, insert_events, record_event, record_orphan, unstored_removed
from .signals import transaction_changed, transaction_reversing
from .states import CREDITING, EXPIRES_FROM, REVERSING, TRANSITIONS

# The package's one logger name, whichever of its modules writes.
log = logging.getLogger("cabinet.payments")

_KEPT_FIELDS = (
    (Transaction.bill_number, "billnumber"),
    (Transaction.approval_code, "approvalcode"),
    (Transaction.response_code, "response_code"),
    (Transaction.error_code, "error_code"),
    (Transaction.message, "message"),
)


def _set_status(status, slot):
    """Build the compare-and-set of a status; absent fields keep their values."""
    return Transaction.update(
        {
            Transaction.status: slot("status"),
            Transaction.updated_at: slot("updated_at", Transaction.updated_at),
            **{
                column: fn.COALESCE(slot(column.name), column)
                for column, _ in _KEPT_FIELDS
            },
        }
    ).where(Transaction.id == slot("id"), Transaction.status.in_(TRANSITIONS[status]))


_SET_STATUS = {status: Prepared(partial(_set_status, status)) for status in TRANSITIONS}


@dataclass
class Outcome:
    """What applying a status did: credited, changed, duplicate, illegal, …"""

    result: str
    transaction: Transaction | None = None


def _about(transaction):
    """Name a transaction's order and contract for a log line's `extra`."""
    return {"order_id": transaction.order_id, "contract": transaction.contract.number}


_ORDER = Prepared(
    lambda slot: (
        Transaction.select(Transaction, Contract)
        .join_from(Transaction, Contract)
        .where(Transaction.order_id == slot("order_id"))
        .limit(1)
    )
)


def apply_status(order_id, status_word, *, source, fields=None, instance=None):
    """Apply a status Uniteller reported for an order: the one path for every source."""
    status = normalize_status(status_word)
    kept = unstored_removed(fields or {})
    with write_unit():
        transaction = _ORDER.first(order_id=order_id) if order_id else None
        if transaction is None or (
            instance is not None and transaction.instance_id != instance.id
        ):
            return keep_orphan(order_id, status, source, kept, instance)
        return apply_loaded(transaction, status, status_word, kept, source)


def keep_orphan(order_id, status, source, kept, instance):
    """Keep a status for an order we do not have (call in a write unit)."""
    record_orphan(order_id, instance, source, status, kept)
    log.warning(
        "orphan %s for unknown order=%s",
        source,
        order_id,
        extra={"order_id": str(order_id)[:127]},
    )
    return Outcome("orphan")


def apply_loaded(transaction, status, status_word, kept, source, applied=None):
    """Record what was received about a loaded order, then apply it (in a unit).

    `kept` goes into the event row; `applied` (default: all of `kept`) are the
    fields whose values the transaction takes (BillNumber, Total, …): for a
    callback, the signed ones only.
    """
    received = event(transaction, source, "received", transaction.status, status, kept)
    if status is None:
        insert_events(
            received,
            event(
                transaction,
                source,
                "rejected",
                transaction.status,
                None,
                note=f"unknown status {str(status_word)[:60]!r}",
            ),
        )
        return Outcome("ignored", transaction)
    applied = kept if applied is None else applied
    return _transition(transaction, status, applied, source, received)


def _transition(transaction, status, fields, source, received):
    """Move a transaction to a status by compare-and-set; credit or reverse once.

    `received` is the event of the report itself, written with the outcome's
    events in one statement.
    """
    lower = {k.lower(): v for k, v in fields.items()}
    if status == "partly_canceled":
        insert_events(
            received,
            event(
                transaction,
                source,
                "note",
                transaction.status,
                transaction.status,
                note="partly canceled at Uniteller",
            ),
        )
        return Outcome("ignored", transaction)
    if status in CREDITING and not _total_matches(transaction, lower):
        insert_events(received)
        flag_for_review(
            transaction,
            source,
            f"Total {lower.get('total')!r} differs from the order's amount",
        )
        return Outcome("review", transaction)
    old = transaction.status
    changes = {"status": status, "updated_at": utcnow()}
    for column, key in _KEPT_FIELDS:
        value = lower.get(key)
        changes[column.name] = str(value)[: column.max_length] if value else None
    changed = _SET_STATUS[status].execute(id=transaction.id, **changes)
    if not changed:
        current = (
            Transaction.select(Transaction.status)
            .where(Transaction.id == transaction.id)
            .scalar()
        )
        if current == status or (status == "authorized" and current == "paid"):
            insert_events(received)
            return Outcome("duplicate", transaction)
        insert_events(
            received,
            event(
                transaction,
                source,
                "illegal",
                current,
                status,
                note=f"{current} -> {status} is not allowed",
            ),
        )
        log.warning(
            "illegal transition order=%s %s -> %s",
            transaction.order_id,
            current,
            status,
            extra=_about(transaction),
        )
        return Outcome("illegal", transaction)
    # The row now holds exactly these values: no need to read it back.
    for name, value in changes.items():
        if value is not None:
            setattr(transaction, name, value)
    insert_events(received, event(transaction, source, "state", old, status))
    if status == REVERSING:
        transaction_reversing.send(transaction)
    result = _move_money(transaction, status)
    # Listeners (autopay, …) write in this same unit: their rows commit with it.
    transaction_changed.send(transaction, old=old, outcome=result)
    return Outcome(result, transaction)


def _move_money(transaction, status):
    """Credit or reverse what a new status means, once; name what happened."""
    if status in CREDITING and ledger.credit(transaction):
        log.info(
            "credited order=%s contract=%s amount=%d",
            transaction.order_id,
            transaction.contract.number,
            transaction.amount,
            extra=_about(transaction),
        )
        return "credited"
    if status == REVERSING and ledger.reverse(transaction):
        log.info("reversed order=%s", transaction.order_id, extra=_about(transaction))
        return "reversed"
    return "changed"


def expire_unseen(transaction):
    """Expire a `new` order Uniteller never saw within its lifetime; True if so."""
    changed = (
        Transaction.update(status="expired", updated_at=utcnow())
        .where(
            Transaction.id == transaction.id,
            Transaction.status.in_(EXPIRES_FROM),
        )
        .execute()
    )
    if changed:
        record_event(
            transaction,
            "status",
            "state",
            "new",
            "expired",
            note="unknown to Uniteller after its lifetime",
        )
    return bool(changed)


def _total_matches(transaction, lower_fields):
    """True unless a signed Total says another amount than the order's."""
    total = lower_fields.get("total")
    if total in (None, ""):
        return True
    try:
        return to_kopecks(str(total).replace(",", ".")) == transaction.amount
    except AmountError:
        return False


def clear_review(transaction, source):
    """Take the review flag off a transaction once looked at; False if it had none."""
    cleared = (
        Transaction.update(needs_review=False, updated_at=utcnow())
        .where(
            Transaction.id == transaction.id,
            Transaction.needs_review == True,  # noqa: E712
        )
        .execute()
        == 1
    )
    if cleared:
        # The reason stays on the row and in the history: what was looked at.
        record_event(
            transaction,
            source,
            "note",
            transaction.status,
            transaction.status,
            note="reviewed",
        )
    return cleared


def flag_for_review(transaction, source, reason):
    """Mark a transaction for an operator's review, without touching its money."""
    Transaction.update(
        needs_review=True, review_reason=reason[:500], updated_at=utcnow()
    ).where(Transaction.id == transaction.id).execute()
    record_event(
        transaction,
        source,
        "review",
        transaction.status,
        transaction.status,
        note=reason,
    )
    log.warning(
        "review order=%s: %s", transaction.order_id, reason, extra=_about(transaction)
    )
