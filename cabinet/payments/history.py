"""A payment's history: every report and change kept as an event row, minus secrets."""

from functools import partial

from ..clock import utcnow
from ..models import TransactionEvent
from ..prepared import Prepared

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


def record_event(transaction, source, kind, old, new, fields=None, note=None):
    """Record an event of a transaction."""
    insert_events(event(transaction, source, kind, old, new, fields, note))


def event(transaction, source, kind, old, new, fields=None, note=None):
    """Describe an event row of a transaction (written by insert_events)."""
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


def insert_events(*rows):
    """Write event rows in one statement, in order."""
    _EVENT_INSERTS[len(rows)].execute(
        **{
            f"{name}{n}": value
            for n, row in enumerate(rows)
            for name, value in row.items()
        }
    )


def record_orphan(order_id, instance, source, status, fields):
    """Keep a report about an order we do not have."""
    TransactionEvent.create(
        order_id=str(order_id)[:127],
        instance=instance,
        source=source,
        kind="orphan",
        new_status=status,
        fields=fields,
        note="unknown order",
    )


def unstored_removed(fields):
    """Drop secrets and card data from raw fields before they are kept."""
    return {
        str(k)[:64]: (v if isinstance(v, str) else str(v))[:500]
        for k, v in fields.items()
        if str(k).lower() not in _UNSTORED_FIELDS
    }


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
