"""New orders: a one-time or binding payment with its pay form, a recurrent try."""

import logging
import re
import secrets
from datetime import timedelta

from flask import current_app

from .. import acquirer
from .. import params as module_params
from ..clock import utcnow
from ..db import write_unit
from ..errors import AmountOutOfRange, NotFound
from ..models import Transaction
from .history import record_event

# The package's one logger name, whichever of its modules writes.
log = logging.getLogger("cabinet.payments")


def new_order_id(contract, prefix="P"):
    """Make a fresh order id: readable, unique, ASCII, well under 127 characters."""
    number = re.sub(r"[^A-Za-z0-9]", "", contract.number)[:40] or "C"
    return f"{prefix}{number}-{secrets.token_hex(6)}"


def _for_order(url, order_id):
    """Return a return URL, built for the order if it is a function of its id."""
    return url(order_id) if callable(url) else url


def start_payment(
    contract, amount, url_ok, url_no, language="ru", source="cabinet", kind="payment"
):
    """Create a `new` card payment and return it with its signed pay form.

    kind "bind" is the first payment of an autopay: Uniteller keeps the card
    for recurrent charges (IsRecurrentStart=1). A return URL may be a function of
    the new order id, so the URL itself can name the order.
    """
    instance, configuration = acquirer.payment_gateway(contract)
    low, high = acquirer.amount_limits(configuration)
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


def transaction_of(contract, order_id):
    """Return a contract's own transaction by order id; NotFound for anyone else's."""
    transaction = Transaction.by_order_id(order_id or "")
    if transaction is None or transaction.contract_id != contract.id:
        raise NotFound("unknown_order")
    return transaction
