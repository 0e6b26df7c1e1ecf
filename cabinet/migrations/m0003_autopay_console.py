"""Autopay, notices, API tokens, the console's audit and refunds, monitor indexes."""

from peewee import (
    BigIntegerField,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from . import Frozen, create


class Contract(Frozen):
    pass


class Operator(Frozen):
    pass


class Transaction(Frozen):
    pass


class Autopay(Frozen):
    contract = ForeignKeyField(Contract, unique=True)
    mode = CharField(max_length=16)
    weekday = IntegerField(null=True)
    day_of_month = IntegerField(null=True)
    amount = BigIntegerField(null=True)
    state = CharField(max_length=16)
    parent = ForeignKeyField(Transaction, null=True)
    binding = ForeignKeyField(Transaction, null=True)
    suspended_reason = CharField(max_length=300, null=True)
    active_since = DateTimeField(null=True)
    created_at = DateTimeField()
    updated_at = DateTimeField()


class AutopayConsent(Frozen):
    autopay = ForeignKeyField(Autopay)
    terms_version = CharField(max_length=32)
    mode = CharField(max_length=16)
    amount = BigIntegerField(null=True)
    ip = CharField(max_length=64)
    user_agent = CharField(max_length=300)
    created_at = DateTimeField()


class AutopayCharge(Frozen):
    autopay = ForeignKeyField(Autopay)
    period = CharField(max_length=64)
    due_on = DateField()
    amount = BigIntegerField()
    reason = CharField(max_length=300, null=True)
    source = CharField(max_length=32)
    status = CharField(max_length=16)
    tries = IntegerField()
    next_try_on = DateField(null=True)
    transaction = ForeignKeyField(Transaction, null=True)
    result_code = CharField(max_length=32, null=True)
    result_message = CharField(max_length=300, null=True)
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        indexes = ((("autopay", "period"), True), (("status", "next_try_on"), False))


class Notice(Frozen):
    contract = ForeignKeyField(Contract)
    kind = CharField(max_length=32)
    text = TextField()
    created_at = DateTimeField(index=True)
    read_at = DateTimeField(null=True)
    emailed_at = DateTimeField(null=True)


class ApiToken(Frozen):
    name = CharField(max_length=64, unique=True)
    token_hash = CharField(max_length=64, unique=True)
    created_at = DateTimeField()
    revoked_at = DateTimeField(null=True)


class AuditEntry(Frozen):
    operator = ForeignKeyField(Operator, null=True)
    login = CharField(max_length=64)
    action = CharField(max_length=64)
    object_type = CharField(max_length=32)
    object_id = CharField(max_length=127)
    before = TextField(null=True)
    after = TextField(null=True)
    created_at = DateTimeField()

    class Meta:
        indexes = (
            (("created_at", "id"), False),
            (("operator", "created_at"), False),
            (("action", "created_at"), False),
        )


class Refund(Frozen):
    transaction = ForeignKeyField(Transaction)
    amount = BigIntegerField()
    status = CharField(max_length=16)
    operator = ForeignKeyField(Operator, null=True)
    error_code = CharField(max_length=16, null=True)
    error_message = CharField(max_length=500, null=True)
    note = CharField(max_length=500, null=True)
    created_at = DateTimeField()
    updated_at = DateTimeField()


def upgrade(migrator, database):
    """Create the autopay, notice, token, audit and refund tables; monitor indexes."""
    migrator.migrate(
        migrator.drop_index("transaction", "transaction_instance_id_created_at"),
        migrator.add_index("transaction", ("instance_id", "created_at", "id")),
        migrator.add_index(
            "transaction", ("instance_id", "status", "created_at", "id")
        ),
    )
    create(
        database,
        Autopay,
        AutopayConsent,
        AutopayCharge,
        Notice,
        ApiToken,
        AuditEntry,
        Refund,
    )
    database.execute_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS refund_one_pending "
        "ON refund (transaction_id) WHERE status = 'pending'"
    )
