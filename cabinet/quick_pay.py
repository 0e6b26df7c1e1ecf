"""Paying without signing in: which contract a typed number pays, and the limits.

A number pays if the cabinet knows it and it is active, or, when there is one
module instance with an OSMP connector, if that billing's `check` answers 0:
the contract is then made here (source `billing`). Every refusal is the same
QuickPayRefused, so the page tells nothing about a number.
"""

import hashlib
import logging

from flask import current_app

from . import accounts, acquirer, contract_sync
from .billing import protocols
from .errors import CabinetError, Conflict, PaymentUnavailable
from .extensions import get_redis
from .models import BillingConnector, Contract, ModuleInstance
from .money import format_signed
from .pacing import WindowLimit

log = logging.getLogger(__name__)
# A subscriber waits on the billing's answer: at most this long.
CHECK_TIMEOUT_SECONDS = 10


class QuickPayRefused(CabinetError):
    """This number cannot be paid here (unknown, blocked, refused by the billing)."""

    status_code = 400


def the_instance():
    """Return the only module instance, or None when there are none or several."""
    instances = list(ModuleInstance.select().limit(2))
    return instances[0] if len(instances) == 1 else None


def configuration_for_form():
    """Return the active configuration the form is for (receipts or not), or None."""
    instance = the_instance()
    return instance.active_configuration() if instance else None


def limits(address, number):
    """Return the per-address and per-number WindowLimits of one attempt."""
    config = current_app.config
    hashed = hashlib.sha256(number.encode()).hexdigest()[:32]
    return (
        WindowLimit(
            get_redis(),
            f"cabinet:quick-pay:ip:{address}",
            config["QUICK_PAY_ADDRESS_LIMIT"],
        ),
        WindowLimit(
            get_redis(),
            f"cabinet:quick-pay:n:{hashed}",
            config["QUICK_PAY_CONTRACT_LIMIT"],
        ),
    )


def _osmp_connectors(instance):
    return list(
        BillingConnector.select().where(
            BillingConnector.instance == instance,
            BillingConnector.kind == "osmp",
            BillingConnector.is_active == True,  # noqa: E712
        )
    )


def _confirmed_by_billing(number, amount):
    """Make the contract of a number the only instance's billing confirms, or None."""
    instance = the_instance()
    connectors = _osmp_connectors(instance) if instance else []
    if not connectors:
        return None
    balance = None
    for connector in connectors:
        result = protocols.probe(connector, number, amount, CHECK_TIMEOUT_SECONDS)
        if result.outcome != "done":
            log.info(
                "quick pay: the billing did not confirm the number: %s",
                result.answer,
                extra={"contract": number, "connector": connector.name},
            )
            return None
        balance = result.balance if result.balance is not None else balance
    record = {"name": number, "instance": instance.code}
    if balance is not None:  # the billing's balance as its check answered it now
        record["billing_balance"] = format_signed(balance)
    try:
        # Create only: one the API or an import made during the check keeps
        # its own name and balance.
        contract, _ = contract_sync.upsert(number, record, "billing", create_only=True)
    except Conflict:  # made beside us meanwhile (another attempt, the API)
        contract = Contract.by_number(number)
    log.info("quick pay: contract made from the billing", extra={"contract": number})
    return contract


def contract_to_pay(number, amount):
    """Return the contract a typed number pays, or raise QuickPayRefused."""
    number = (number or "").strip()
    if not accounts.valid_contract_number(number):
        raise QuickPayRefused("unknown")
    contract = Contract.by_number(number) or _confirmed_by_billing(number, amount)
    if contract is None:
        raise QuickPayRefused("unknown")
    try:
        acquirer.payment_gateway(contract)  # active, linked, configured
    except PaymentUnavailable as exc:
        raise QuickPayRefused(exc.message) from None
    return contract


def masked_name(name):
    """Mask a name as "Иванов И." (surname, one initial): QUICK_PAY_SHOW_NAME."""
    words = (name or "").split()
    if not words:
        return ""
    return " ".join([words[0], *([f"{words[1][0]}."] if len(words) > 1 else [])])
