"""Keep the processing centre's code of a payment (Error_Code: F01 stops autopay)."""

from peewee import CharField


def upgrade(migrator, database):
    """Add transaction.error_code (repeatable: the column may be there already)."""
    columns = {column.name for column in database.get_columns("transaction")}
    if "error_code" not in columns:
        migrator.migrate(
            migrator.add_column(
                "transaction", "error_code", CharField(max_length=32, null=True)
            )
        )
