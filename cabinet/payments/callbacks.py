"""Uniteller's callbacks: verify the signature, then apply the status they report."""

import logging

from .. import acquirer
from .. import params as module_params
from ..db import write_unit
from ..errors import BadRequest, Forbidden
from ..models import Contract, ModuleConfiguration, ModuleInstance, Transaction
from ..prepared import Prepared
from ..uniteller.client import normalize_status
from .history import unstored_removed
from .status import apply_loaded, keep_orphan

# The package's one logger name, whichever of its modules writes.
log = logging.getLogger("cabinet.payments")


def receive_callback(instance_code, fields):
    """Verify a Uniteller callback and apply its status; raise Forbidden if refused.

    `fields`: a dict, or the (name, value) pairs as they came (query string, then
    body). Only the signed fields (Order_ID, Status and the configuration's
    CallbackFields, by their exact names) reach the transaction; the others are
    kept in the callback's event row and nowhere else.
    """
    fields = merge_fields(fields.items() if isinstance(fields, dict) else fields)
    order_id = fields.get("Order_ID")
    status = normalize_status(fields.get("Status"))
    kept = unstored_removed(fields)
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
                # Answered as a bad signature is: the answer does not tell
                # which instance codes exist.
                log.warning("callback refused: unknown instance")
                raise Forbidden("bad_signature")
            configuration = instance.active_configuration()
        if configuration is None:
            log.warning(
                "callback refused: instance=%s has no configuration", instance.code
            )
            raise Forbidden("bad_signature")  # alike, as above
        p = module_params.effective(configuration.params)
        signed = p["callback_fields"].split()
        if not acquirer.client_for(configuration).callback_is_authentic(fields, signed):
            log.warning(
                "callback refused: bad signature instance=%s order=%s",
                instance.code,
                str(order_id)[:127],
                extra={"order_id": str(order_id)[:127]},
            )
            raise Forbidden("bad_signature")
        if transaction is None:
            return keep_orphan(order_id, status, "callback", kept, instance)
        applied = {name: fields[name] for name in signed if name in fields}
        return apply_loaded(
            transaction, status, fields.get("Status"), kept, "callback", applied
        )


def merge_fields(pairs):
    """Merge a callback's (name, value) pairs into one dict; refuse a name given twice.

    Uniteller repeats its fields in the query string: the same name with the same
    value is one field. A name again in another spelling or with another value
    is not Uniteller's (the signature covers one of them at most): refused.
    """
    fields, seen = {}, {}
    for name, value in pairs:
        name = str(name)
        key = name.lower()
        if key in seen and seen[key] != (name, value):
            log.warning("callback refused: field %s repeated", name[:64])
            raise BadRequest("repeated_field")
        seen[key] = (name, value)
        fields[name] = value
    return fields


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


def _callback_order(instance_code, order_id):
    """Load an instance's order with its configuration, instance and contract."""
    if not isinstance(order_id, str):
        return None
    return _CALLBACK_ORDER.first(order_id=order_id, code=instance_code)
