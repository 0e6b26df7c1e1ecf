"""54-FZ receipts: a contract's phone, the receipts asked for, the documents issued."""

from peewee import (
    BigIntegerField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from . import Frozen, create


class Transaction(Frozen):
    pass


class Refund(Frozen):
    pass


class Receipt(Frozen):
    transaction = ForeignKeyField(Transaction)
    refund = ForeignKeyField(Refund, null=True)
    kind = CharField(max_length=16)
    key = CharField(max_length=64, unique=True)
    body = TextField()
    total = BigIntegerField()
    contact = CharField(max_length=254)
    state = CharField(max_length=16)
    note = CharField(max_length=500, null=True)
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        indexes = ((("state", "created_at"), False),)


class FiscalDocument(Frozen):
    transaction = ForeignKeyField(Transaction)
    receipt = ForeignKeyField(Receipt, null=True)
    fiscal_id = CharField(max_length=64, unique=True)
    doc_type = IntegerField()
    total = BigIntegerField(null=True)
    fiscal_number = CharField(max_length=32, null=True)
    fiscal_attr = CharField(max_length=32, null=True)
    fiscal_date = CharField(max_length=32, null=True)
    fiscal_link = CharField(max_length=1000, null=True)
    body = TextField()
    source = CharField(max_length=16)
    created_at = DateTimeField()


def upgrade(migrator, database):
    """Add contract.phone and the receipt tables (repeatable)."""
    columns = {column.name for column in database.get_columns("contract")}
    if "phone" not in columns:
        migrator.migrate(
            migrator.add_column(
                "contract", "phone", CharField(max_length=16, null=True)
            )
        )
    create(database, Receipt, FiscalDocument)
