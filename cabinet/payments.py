"""The service layer: the only code that changes a transaction or a balance."""

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from flask import current_app
from peewee import fn

from . import params as module_params
from .clock import utcnow
from .db import write_unit
from .errors import AmountOutOfRange, Forbidden, NotFound, PaymentUnavailable
from .models import (
    Contract,
    LedgerEntry,
    ModuleConfiguration,
    ModuleInstance,
    Transaction,
    TransactionEvent,
)
from .money import AmountError, to_kopecks
from .prepared import Prepared
from .uniteller.client import UnitellerClient, normalize_status

log = logging.getLogger(__name__)

# Keys (compared lower-case) never kept in an event row: secrets and card data.
_UNSTORED_FIELDS = {
    "password",
    "login",
    "cardnumber",
    "card_idp",
    "token_idp",
    "cardholder",
    "cvc2",
    "cvc",
    "card_number",
    "pan",
}
# Which of our statuses may move to which: the compare-and-set conditions.
_FROM = {
    "authorized": ("new", "waiting", "failed", "expired"),
    "paid": ("new", "waiting", "authorized", "failed", "expired"),
    "waiting": ("new",),
    "failed": ("new", "waiting", "expired"),
    "canceled": ("new", "waiting", "authorized", "paid", "failed", "expired"),
}
# Callback and status fields kept on the transaction: (column, field lower-case).
_KEPT_FIELDS = (
    (Transaction.bill_number, "billnumber"),
    (Transaction.approval_code, "approvalcode"),
    (Transaction.response_code, "response_code"),
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
    ).where(Transaction.id == slot("id"), Transaction.status.in_(_FROM[status]))


_SET_STATUS = {status: Prepared(partial(_set_status, status)) for status in _FROM}


@dataclass
class Outcome:
    """What applying a status did: credited, changed, duplicate, illegal, …"""

    result: str
    transaction: Transaction | None = None


def _about(transaction):
    """Name a transaction's order and contract for a log line's `extra`."""
    return {"order_id": transaction.order_id, "contract": transaction.contract.number}


def client_for(configuration):
    """Build the Uniteller client of a module configuration."""
    p = module_params.effective(configuration.params)
    return UnitellerClient(p["gateway_url"], p["shop_id"], p["password"], p["login"])


def payment_gateway(contract):
    """Return (instance, configuration) a contract pays through, or raise why not."""
    if contract.instance_id is None:
        raise PaymentUnavailable("not_linked")
    configuration = contract.instance.active_configuration()
    if configuration is None:
        raise PaymentUnavailable("no_active_configuration")
    if module_params.missing_for_payments(configuration.params):
        raise PaymentUnavailable("configuration_incomplete")
    return contract.instance, configuration


def amount_limits(configuration):
    """Return (min, max) payment in kopecks for a configuration."""
    p = module_params.effective(configuration.params)
    return to_kopecks(p["min_amount"]), to_kopecks(p["max_amount"])


def new_order_id(contract, prefix="P"):
    """Make a fresh order id: readable, unique, ASCII, well under 127 characters."""
    number = re.sub(r"[^A-Za-z0-9]", "", contract.number)[:40] or "C"
    return f"{prefix}{number}-{secrets.token_hex(6)}"


def start_payment(
    contract, amount, url_ok, url_no, language="ru", source="cabinet", kind="payment"
):
    """Create a `new` card payment and return it with its signed pay form.

    kind "bind" is the first payment of an autopay: Uniteller keeps the card
    for recurrent charges (IsRecurrentStart=1).
    """
    instance, configuration = payment_gateway(contract)
    low, high = amount_limits(configuration)
    if not low <= amount <= high:
        raise AmountOutOfRange("out_of_range", low=low, high=high)
    p = module_params.effective(configuration.params)
    now = utcnow()
    with write_unit():
        transaction = Transaction.create(
            order_id=new_order_id(contract, "B" if kind == "bind" else "P"),
            contract=contract,
            instance=instance,
            configuration=configuration,
            kind=kind,
            amount=amount,
            created_at=now,
            updated_at=now,
            # The status check looks after a grace period, so the callback
            # usually wins.
            next_check_at=now
            + timedelta(seconds=current_app.config["STATUS_CHECK_GRACE"]),
        )
        record_event(transaction, source, "state", None, "new", note="created")
    form = client_for(configuration).pay_form(
        transaction.order_id,
        amount,
        url_ok,
        url_no,
        customer_id=contract.number,
        lifetime=p["lifetime"],
        email=contract.email or "",
        language=language,
        callback_fields=p["callback_fields"].split(),
        recurrent_start=kind == "bind",
    )
    log.info(
        "payment created order=%s contract=%s amount=%d",
        transaction.order_id,
        contract.number,
        amount,
        extra={"order_id": transaction.order_id, "contract": contract.number},
    )
    return transaction, form


def create_recurrent(charge, order_id, configuration):
    """Write the `new` transaction of one try of an autopay charge (call in a unit)."""
    autopay = charge.autopay
    contract = autopay.contract
    now = utcnow()
    transaction = Transaction.create(
        order_id=order_id,
        contract=contract,
        instance=contract.instance_id,
        configuration=configuration,
        kind="recurrent",
        amount=charge.amount,
        created_at=now,
        updated_at=now,
        next_check_at=now + timedelta(seconds=current_app.config["STATUS_CHECK_GRACE"]),
    )
    record_event(
        transaction,
        "autopay",
        "state",
        None,
        "new",
        note=f"autopay charge {charge.period}, try {charge.tries}",
    )
    return transaction


def receive_callback(instance_code, fields):
    """Verify a Uniteller callback and apply its status; raise NotFound/Forbidden."""
    order_id = fields.get("Order_ID")
    status = normalize_status(fields.get("Status"))
    kept = _unstored_removed(fields)
    # One unit from the first read: the order, its configuration, instance and
    # contract come in one query, and what it read is what the update decides on.
    with write_unit():
        transaction = _callback_order(instance_code, order_id)
        if transaction is not None:
            # Verify with the configuration the order was made with: the active
            # one may have changed since.
            instance, configuration = transaction.instance, transaction.configuration
        else:
            instance = ModuleInstance.by_code(instance_code)
            if instance is None:
                raise NotFound("unknown_instance")
            configuration = instance.active_configuration()
        if configuration is None:
            log.warning(
                "callback refused: instance=%s has no configuration", instance.code
            )
            raise Forbidden("no_configuration")
        p = module_params.effective(configuration.params)
        if not client_for(configuration).callback_is_authentic(
            fields, p["callback_fields"].split()
        ):
            log.warning(
                "callback refused: bad signature instance=%s order=%s",
                instance.code,
                str(order_id)[:127],
                extra={"order_id": str(order_id)[:127]},
            )
            raise Forbidden("bad_signature")
        if transaction is None:
            return _orphan(order_id, status, "callback", kept, instance)
        return _apply(transaction, status, fields.get("Status"), kept, "callback")


# An instance's order with its configuration, instance and contract.
_CALLBACK_ORDER = Prepared(
    lambda slot: (
        Transaction.select(Transaction, ModuleConfiguration, ModuleInstance, Contract)
        .join_from(Transaction, ModuleConfiguration)
        .join_from(Transaction, ModuleInstance)
        .join_from(Transaction, Contract)
        .where(
            Transaction.order_id == slot("order_id"),
            ModuleInstance.code == slot("code"),
        )
        .limit(1)
    )
)
# An order with its contract.
_ORDER = Prepared(
    lambda slot: (
        Transaction.select(Transaction, Contract)
        .join_from(Transaction, Contract)
        .where(Transaction.order_id == slot("order_id"))
        .limit(1)
    )
)


def _callback_order(instance_code, order_id):
    """Load an instance's order with its configuration, instance and contract."""
    if not isinstance(order_id, str):
        return None
    return _CALLBACK_ORDER.first(order_id=order_id, code=instance_code)


def apply_status(order_id, status_word, *, source, fields=None, instance=None):
    """Apply a status Uniteller reported for an order: the one path for every source."""
    status = normalize_status(status_word)
    kept = _unstored_removed(fields or {})
    with write_unit():
        transaction = _ORDER.first(order_id=order_id) if order_id else None
        if transaction is None or (
            instance is not None and transaction.instance_id != instance.id
        ):
            return _orphan(order_id, status, source, kept, instance)
        return _apply(transaction, status, status_word, kept, source)


def _orphan(order_id, status, source, kept, instance):
    """Keep a status for an order we do not have (call in a write unit)."""
    TransactionEvent.create(
        order_id=str(order_id)[:127],
        instance=instance,
        source=source,
        kind="orphan",
        new_status=status,
        fields=kept,
        note="unknown order",
    )
    log.warning(
        "orphan %s for unknown order=%s",
        source,
        order_id,
        extra={"order_id": str(order_id)[:127]},
    )
    return Outcome("orphan")


def _apply(transaction, status, status_word, kept, source):
    """Record what was received about a loaded order, then apply it (in a unit)."""
    received = _event(transaction, source, "received", transaction.status, status, kept)
    if status is None:
        _insert_events(
            received,
            _event(
                transaction,
                source,
                "rejected",
                transaction.status,
                None,
                note=f"unknown status {str(status_word)[:60]!r}",
            ),
        )
        return Outcome("ignored", transaction)
    return _transition(transaction, status, kept, source, received)


def _transition(transaction, status, fields, source, received):
    """Move a transaction to a status by compare-and-set; credit or reverse once.

    `received` is the event of the report itself, written with the outcome's
    events in one statement.
    """
    lower = {k.lower(): v for k, v in fields.items()}
    if status == "partly_canceled":
        _insert_events(
            received,
            _event(
                transaction,
                source,
                "note",
                transaction.status,
                transaction.status,
                note="partly canceled at Uniteller",
            ),
        )
        return Outcome("ignored", transaction)
    if status in ("authorized", "paid") and not _total_matches(transaction, lower):
        _insert_events(received)
        _flag_for_review(
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
            _insert_events(received)
            return Outcome("duplicate", transaction)
        _insert_events(
            received,
            _event(
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
    _insert_events(received, _event(transaction, source, "state", old, status))
    _after_change(transaction)
    if status in ("authorized", "paid") and _credit(transaction):
        log.info(
            "credited order=%s contract=%s amount=%d",
            transaction.order_id,
            transaction.contract.number,
            transaction.amount,
            extra=_about(transaction),
        )
        if transaction.kind == "bind":
            from . import autopay  # autopay builds on payments, not the reverse

            autopay.bind_succeeded(transaction)
        return Outcome("credited", transaction)
    if status == "canceled" and _reverse(transaction):
        log.info("reversed order=%s", transaction.order_id, extra=_about(transaction))
        return Outcome("reversed", transaction)
    return Outcome("changed", transaction)


def _after_change(transaction):
    """Let the autopay charge of a recurrent try learn how it ended (same unit)."""
    if transaction.kind == "recurrent":
        from . import autopay  # autopay builds on payments, not the reverse

        autopay.settle_try(transaction)


# Waits between status checks of an order Uniteller does not know yet, or that is
# not final there yet: 5 min, 15 min, 1 h, 6 h, then daily.
CHECK_BACKOFF = (300, 900, 3600, 21600, 86400)
# The statuses the status check asks Uniteller about.
CHECKED_STATUSES = ("new", "waiting", "authorized", "failed")
STALE_AFTER = timedelta(days=7)


def after_status_check(transaction_id, found, now):
    """Plan an order's next status check; expire or flag it when that is due."""
    margin = timedelta(seconds=current_app.config["STATUS_CHECK_EXPIRE_MARGIN"])
    with write_unit():
        transaction = Transaction.get_by_id(transaction_id)
        lifetime = timedelta(
            seconds=int(
                module_params.effective(transaction.configuration.params)["lifetime"]
            )
        )
        payable_until = transaction.created_at + lifetime + margin
        result = "scheduled"
        if transaction.status == "new" and not found and now >= payable_until:
            result = "expired" if _mark_expired(transaction) else "scheduled"
        transaction = Transaction.get_by_id(transaction_id)
        attempts = transaction.check_attempts + 1
        if transaction.status not in CHECKED_STATUSES or (
            # A failed order may still be paid on a retry while its form lives.
            transaction.status == "failed" and now >= payable_until
        ):
            next_check = None
        else:
            wait = CHECK_BACKOFF[min(attempts, len(CHECK_BACKOFF)) - 1]
            next_check = now + timedelta(seconds=wait)
        Transaction.update(check_attempts=attempts, next_check_at=next_check).where(
            Transaction.id == transaction_id
        ).execute()
        if (
            next_check
            and now - transaction.created_at >= STALE_AFTER
            and not (transaction.needs_review)
        ):
            _flag_for_review(transaction, "status", "still open after 7 days")
            result = "flagged"
    return result


def _mark_expired(transaction):
    """Expire a `new` order that Uniteller never saw within its lifetime."""
    changed = (
        Transaction.update(status="expired", updated_at=utcnow())
        .where(Transaction.id == transaction.id, Transaction.status == "new")
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


def _flag_for_review(transaction, source, reason):
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


def post_ledger(transaction, kind, amount, key=None):
    """Write one ledger entry and move the balance; False if its key exists already.

    Call inside a write unit. The key (default "<kind>:<order id>") makes the
    entry happen once, whoever tries it how often.
    """
    # ON CONFLICT DO NOTHING rather than catching IntegrityError in a savepoint:
    # the same guarantee, two statements fewer.
    inserted = _LEDGER_INSERT.execute(
        contract=transaction.contract_id,
        transaction=transaction.id,
        kind=kind,
        amount=amount,
        key=key or f"{kind}:{transaction.order_id}",
        created_at=utcnow(),
    )
    if not inserted:
        return False
    _BALANCE_MOVE.execute(amount=amount, id=transaction.contract_id)
    return True


_LEDGER_INSERT = Prepared(
    lambda slot: LedgerEntry.insert(
        {
            LedgerEntry.contract: slot("contract"),
            LedgerEntry.transaction: slot("transaction"),
            LedgerEntry.kind: slot("kind"),
            LedgerEntry.amount: slot("amount"),
            LedgerEntry.key: slot("key"),
            LedgerEntry.created_at: slot("created_at", LedgerEntry.created_at),
        }
    ).on_conflict(conflict_target=[LedgerEntry.key], action="NOTHING")
)
_BALANCE_MOVE = Prepared(
    lambda slot: Contract.update(balance=Contract.balance + slot("amount")).where(
        Contract.id == slot("id")
    )
)


def _credit(transaction):
    """Credit a successful transaction's amount to its contract, once."""
    return post_ledger(transaction, "credit", transaction.amount)


def _reverse(transaction):
    """Take back what a transaction still holds on the balance, once."""
    held = (
        LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0))
        .where(LedgerEntry.transaction == transaction)
        .scalar()
    )
    if held <= 0:
        return False
    return post_ledger(transaction, "reversal", -held)


def record_event(transaction, source, kind, old, new, fields=None, note=None):
    """Record an event of a transaction."""
    _insert_events(_event(transaction, source, kind, old, new, fields, note))


def _event(transaction, source, kind, old, new, fields=None, note=None):
    """Describe an event row of a transaction (written by _insert_events)."""
    return {
        "transaction": transaction.id,
        "instance": transaction.instance_id,
        "order_id": transaction.order_id,
        "source": source,
        "kind": kind,
        "old_status": old,
        "new_status": new,
        "fields": fields,
        "note": note,
        "created_at": utcnow(),
    }


def _insert_events(*rows):
    """Write event rows in one statement, in order."""
    _EVENT_INSERTS[len(rows)].execute(
        **{
            f"{name}{n}": value
            for n, row in enumerate(rows)
            for name, value in row.items()
        }
    )


def _events_insert(count, slot):
    """Build the insert of `count` event rows."""
    converted = {TransactionEvent.fields, TransactionEvent.created_at}
    return TransactionEvent.insert_many(
        [
            {
                field: slot(f"{field.name}{n}", field if field in converted else None)
                for field in _EVENT_FIELDS
            }
            for n in range(count)
        ]
    )


_EVENT_FIELDS = [
    TransactionEvent._meta.fields[name]
    for name in (
        "transaction",
        "instance",
        "order_id",
        "source",
        "kind",
        "old_status",
        "new_status",
        "fields",
        "note",
        "created_at",
    )
]
_EVENT_INSERTS = {n: Prepared(partial(_events_insert, n)) for n in (1, 2)}


def _unstored_removed(fields):
    """Drop secrets and card data from raw fields before they are kept."""
    return {
        str(k)[:64]: (v if isinstance(v, str) else str(v))[:500]
        for k, v in fields.items()
        if str(k).lower() not in _UNSTORED_FIELDS
    }


def ledger_balance(contract):
    """Sum a contract's ledger (always equal to its balance)."""
    return (
        LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0))
        .where(LedgerEntry.contract == contract)
        .scalar()
    )


def transaction_of(contract, order_id):
    """Return a contract's own transaction by order id; NotFound for anyone else's."""
    transaction = Transaction.by_order_id(order_id or "")
    if transaction is None or transaction.contract_id != contract.id:
        raise NotFound("unknown_order")
    return transaction
