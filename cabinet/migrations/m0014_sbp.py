"""SBP: each transaction says how it was paid (card or sbp)."""

from peewee import CharField


def upgrade(migrator, database):
    """Add transaction.payment_type, "card" for every earlier order (repeatable)."""
    if "payment_type" not in {c.name for c in database.get_columns("transaction")}:
        migrator.migrate(
            migrator.add_column(
                "transaction",
                "payment_type",
                CharField(max_length=8, default="card"),
            )
        )
