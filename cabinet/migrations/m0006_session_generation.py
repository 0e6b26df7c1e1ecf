"""Sessions that can be revoked: a session generation on contracts and operators."""


def upgrade(migrator, database):
    """Add contract.session_generation and operator.session_generation (0)."""
    for table in ("contract", "operator"):
        columns = {c.name for c in database.get_columns(table)}
        if "session_generation" in columns:
            continue  # safe to repeat
        # Plain ADD COLUMN with a default: SQLite's NOT NULL through the migrator
        # rebuilds the table, and with it would go the contract search triggers.
        database.execute_sql(
            f'ALTER TABLE "{table}" ADD COLUMN session_generation '
            "INTEGER NOT NULL DEFAULT 0"
        )
