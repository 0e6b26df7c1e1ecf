"""The billing outbox: connectors per instance, deliveries and their attempts."""

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from . import Frozen, create


class ModuleInstance(Frozen):
    pass


class Transaction(Frozen):
    pass


class Refund(Frozen):
    pass


class BillingConnector(Frozen):
    instance = ForeignKeyField(ModuleInstance)
    name = CharField(max_length=64)
    kind = CharField(max_length=16)
    params = TextField()
    is_active = BooleanField()
    created_by = CharField(max_length=100)
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        indexes = ((("instance", "name"), True),)


class BillingDelivery(Frozen):
    connector = ForeignKeyField(BillingConnector)
    transaction = ForeignKeyField(Transaction)
    refund = ForeignKeyField(Refund, null=True)
    kind = CharField(max_length=16)
    key = CharField(max_length=64)
    amount = BigIntegerField()
    account = CharField(max_length=64)
    state = CharField(max_length=16)
    attempts = IntegerField()
    next_attempt_at = DateTimeField()
    lease_until = DateTimeField(null=True)
    prv_txn = CharField(max_length=64, null=True)
    last_answer = TextField(null=True)
    note = CharField(max_length=500, null=True)
    created_at = DateTimeField()
    updated_at = DateTimeField()
    done_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("connector", "key"), True),
            (("state", "next_attempt_at"), False),
            (("transaction",), False),
        )


class DeliveryAttempt(Frozen):
    delivery = ForeignKeyField(BillingDelivery)
    number = IntegerField()
    request = TextField()
    answer = TextField(null=True)
    outcome = CharField(max_length=16)
    created_at = DateTimeField()


def upgrade(migrator, database):
    """Create the connector, delivery and attempt tables (repeatable: IF NOT EXISTS)."""
    create(database, BillingConnector, BillingDelivery, DeliveryAttempt)
