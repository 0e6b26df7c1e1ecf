"""Contracts from the ISP's systems: status, source, the billing's balance; token
scopes; single-use sign-in handoffs."""

from peewee import BigIntegerField, CharField, DateTimeField, ForeignKeyField

from . import Frozen, create


class Contract(Frozen):
    pass


class ApiToken(Frozen):
    pass


class SignInHandoff(Frozen):
    token_hash = CharField(max_length=64, unique=True)
    contract = ForeignKeyField(Contract)
    api_token = ForeignKeyField(ApiToken, null=True)
    next_url = CharField(max_length=500, null=True)
    created_at = DateTimeField()
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)
    used_ip = CharField(max_length=64, null=True)


CONTRACT_COLUMNS = {
    "status": CharField(max_length=16, default="active"),
    "source": CharField(max_length=16, default="hand"),
    "billing_balance": BigIntegerField(null=True),
    "billing_balance_at": DateTimeField(null=True),
    # Existing rows take their creation time: nothing changed them since.
    "updated_at": DateTimeField(null=True),
}


def upgrade(migrator, database):
    """Add the contract and token columns and the handoff table (repeatable)."""
    columns = {column.name for column in database.get_columns("contract")}
    missing = [name for name in CONTRACT_COLUMNS if name not in columns]
    if missing:
        migrator.migrate(
            *(
                migrator.add_column("contract", name, CONTRACT_COLUMNS[name])
                for name in missing
            )
        )
        database.execute_sql(
            "UPDATE contract SET updated_at = created_at WHERE updated_at IS NULL"
        )
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS contract_updated_at ON contract (updated_at)"
    )
    if "scopes" not in {c.name for c in database.get_columns("api_token")}:
        migrator.migrate(
            migrator.add_column(
                "api_token", "scopes", CharField(max_length=200, default="autopay")
            )
        )
    create(database, SignInHandoff)
