"""New orders: a one-time or binding payment with its pay form, a recurrent try."""

import hashlib
import hmac
import logging
import re
import secrets
from datetime import timedelta

from flask import current_app

from .. import acquirer
from .. import params as module_params
from ..clock import utcnow
from ..db import write_unit
from ..errors import AmountOutOfRange, NotFound, PaymentUnavailable, TooManyRequests
from ..models import Contract, Transaction
from .history import record_event
from .signals import attachment_of

# The package's one logger name, whichever of its modules writes.
log = logging.getLogger("cabinet.payments")


def new_order_id(contract, prefix="P"):
    """Make a fresh order id: readable, unique, ASCII, well under 127 characters."""
    number = re.sub(r"[^A-Za-z0-9]", "", contract.number)[:40] or "C"
    return f"{prefix}{number}-{secrets.token_hex(6)}"


def recurrent_order_id(autopay_id, period, try_number):
    """Name a try of an autopay charge: R<charge token>-<try>, the same every time.

    The token is a keyed hash (HMAC with SECRET_KEY) of the autopay and the
    period, so two workers claiming one try make the same id (the unique index
    keeps one), while nobody without the key can name another subscriber's
    charge and ask our status endpoint whether it was paid.
    """
    key = current_app.config["SECRET_KEY"].encode()
    charge = f"{autopay_id}:{period}".encode()
    token = hmac.new(key, charge, hashlib.sha256).hexdigest()[:20]
    return f"R{token}-{try_number}"


# Orders a subscriber makes: payments and autopay bindings (charges are ours).
SUBSCRIBER_KINDS = ("payment", "bind")


def _refuse_too_many_open(contract, max_open, lifetime, now):
    """Refuse a new order while the contract has max_open payable unpaid ones.

    Call inside the unit that creates the order: it holds the contract's row, so
    two requests at once count one after the other.
    """
    # PostgreSQL locks the row here; SQLite's unit holds the write lock already.
    Contract.update(balance=Contract.balance).where(
        Contract.id == contract.id
    ).execute()
    since = now - lifetime
    open_orders = list(
        Transaction.select(Transaction.created_at)
        .where(
            Transaction.contract == contract,
            Transaction.status == "new",
            Transaction.kind.in_(SUBSCRIBER_KINDS),
            Transaction.created_at > since,
        )
        .order_by(Transaction.created_at)
        .limit(max_open)
    )
    if len(open_orders) >= max_open:
        # The oldest of them stops counting once its form expires.
        wait = open_orders[0].created_at - since
        raise TooManyRequests(
            "too_many_open_orders",
            limit=max_open,
            seconds=max(1, int(wait.total_seconds()) + 1),
        )


def _for_order(url, order_id):
    """Return a return URL, built for the order if it is a function of its id."""
    return url(order_id) if callable(url) else url


def start_payment(
    contract,
    amount,
    url_ok,
    url_no,
    language="ru",
    source="cabinet",
    kind="payment",
    max_open=None,
    payment_type="card",
):
    """Create a `new` payment (card or sbp) and return it with its signed pay form.

    kind "bind" is the first payment of an autopay: Uniteller keeps the card
    for recurrent charges (IsRecurrentStart=1). A return URL may be a function of
    the new order id, so the URL itself can name the order. With max_open, a
    contract that has that many unpaid orders whose forms still live is refused
    (TooManyRequests).
    """
    instance, configuration = acquirer.payment_gateway(contract)
    if payment_type not in acquirer.payment_types(configuration, kind == "bind"):
        raise PaymentUnavailable("payment_type_disabled")
    low, high = acquirer.amount_limits(configuration)
    if not low <= amount <= high:
        raise AmountOutOfRange("out_of_range", low=low, high=high)
    p = module_params.effective(configuration.params)
    now = utcnow()
    with write_unit():
        if max_open:
            lifetime = timedelta(seconds=int(p["lifetime"]))
            _refuse_too_many_open(contract, max_open, lifetime, now)
        transaction = Transaction.create(
            order_id=new_order_id(contract, "B" if kind == "bind" else "P"),
            contract=contract,
            instance=instance,
            configuration=configuration,
            kind=kind,
            payment_type=payment_type,
            amount=amount,
            created_at=now,
            updated_at=now,
            # The status check looks after a grace period, so the callback
            # usually wins.
            next_check_at=now
            + timedelta(seconds=current_app.config["STATUS_CHECK_GRACE"]),
        )
        record_event(transaction, source, "state", None, "new", note="created")
        receipt = attachment_of(transaction, contract, configuration)
    form = acquirer.client_for(configuration).pay_form(
        transaction.order_id,
        amount,
        _for_order(url_ok, transaction.order_id),
        _for_order(url_no, transaction.order_id),
        customer_id=contract.number,
        lifetime=p["lifetime"],
        email=contract.email or "",
        language=language,
        callback_fields=p["callback_fields"].split(),
        recurrent_start=kind == "bind",
        receipt=receipt,
        sbp=payment_type == "sbp",
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
        # Charged on what the parent was paid with: a card or an SBP account.
        payment_type=autopay.parent.payment_type if autopay.parent else "card",
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
    attachment_of(transaction, contract, configuration)  # its receipt, if fiscal
    return transaction


def transaction_of(contract, order_id):
    """Return a contract's own transaction by order id; NotFound for anyone else's."""
    transaction = Transaction.by_order_id(order_id or "")
    if transaction is None or transaction.contract_id != contract.id:
        raise NotFound("unknown_order")
    return transaction
