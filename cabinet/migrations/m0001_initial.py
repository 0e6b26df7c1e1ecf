"""The first schema: instances, configurations, contracts, operators, orders, ledger."""

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    TextField,
)

from . import Frozen, create


class ModuleInstance(Frozen):
    code = CharField(max_length=64, unique=True)
    name = CharField(max_length=200)
    created_at = DateTimeField()


class ModuleConfiguration(Frozen):
    instance = ForeignKeyField(ModuleInstance)
    name = CharField(max_length=100)
    params = TextField()
    is_active = BooleanField()
    created_by = CharField(max_length=100)
    created_at = DateTimeField()
    activated_by = CharField(max_length=100, null=True)
    activated_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("instance", "name"), True),)


class Contract(Frozen):
    number = CharField(max_length=64, unique=True)
    name = CharField(max_length=200)
    email = CharField(max_length=200, null=True)
    password_hash = CharField(max_length=255)
    balance = BigIntegerField()
    instance = ForeignKeyField(ModuleInstance, null=True)
    created_at = DateTimeField()


class Operator(Frozen):
    login = CharField(max_length=64, unique=True)
    password_hash = CharField(max_length=255)
    role = CharField(max_length=16)
    is_active = BooleanField()
    created_at = DateTimeField()


class Transaction(Frozen):
    order_id = CharField(max_length=127, unique=True)
    contract = ForeignKeyField(Contract)
    instance = ForeignKeyField(ModuleInstance)
    configuration = ForeignKeyField(ModuleConfiguration)
    kind = CharField(max_length=16)
    amount = BigIntegerField()
    status = CharField(max_length=16)
    bill_number = CharField(max_length=32, null=True)
    approval_code = CharField(max_length=32, null=True)
    response_code = CharField(max_length=16, null=True)
    message = CharField(max_length=500, null=True)
    needs_review = BooleanField()
    review_reason = CharField(max_length=500, null=True)
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        indexes = (
            (("contract", "created_at"), False),
            (("instance", "created_at"), False),
            (("status", "created_at"), False),
        )


class TransactionEvent(Frozen):
    transaction = ForeignKeyField(Transaction, null=True)
    instance = ForeignKeyField(ModuleInstance, null=True)
    order_id = CharField(max_length=127, index=True)
    source = CharField(max_length=32)
    kind = CharField(max_length=32)
    old_status = CharField(max_length=16, null=True)
    new_status = CharField(max_length=16, null=True)
    fields = TextField(null=True)
    note = CharField(max_length=500, null=True)
    created_at = DateTimeField(index=True)


class LedgerEntry(Frozen):
    contract = ForeignKeyField(Contract)
    transaction = ForeignKeyField(Transaction)
    kind = CharField(max_length=16)
    amount = BigIntegerField()
    key = CharField(max_length=160, unique=True)
    created_at = DateTimeField()


def upgrade(migrator, database):
    """Create the tables of the first release."""
    create(
        database,
        ModuleInstance,
        ModuleConfiguration,
        Contract,
        Operator,
        Transaction,
        TransactionEvent,
        LedgerEntry,
    )
    database.execute_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS module_configuration_one_active "
        "ON module_configuration (instance_id) WHERE is_active"
    )
