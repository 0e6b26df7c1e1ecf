"""The payments feed: each ledger entry records the transaction that wrote it
(PostgreSQL), so the feed reads entries in commit-safe order."""

from peewee import BigIntegerField, PostgresqlDatabase


def upgrade(migrator, database):
    """Add ledger_entry.commit_xid, its default and index (repeatable)."""
    if "commit_xid" not in {c.name for c in database.get_columns("ledger_entry")}:
        migrator.migrate(
            migrator.add_column(
                "ledger_entry", "commit_xid", BigIntegerField(null=True)
            )
        )
    if isinstance(database, PostgresqlDatabase):
        # Entries written before this release all committed before it (the
        # ALTER waited for them): 0 puts them first, in id order.
        database.execute_sql(
            "UPDATE ledger_entry SET commit_xid = 0 WHERE commit_xid IS NULL"
        )
        database.execute_sql(
            "ALTER TABLE ledger_entry ALTER COLUMN commit_xid "
            "SET DEFAULT (pg_current_xact_id()::text::bigint)"
        )
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS ledger_entry_commit_xid_id "
        "ON ledger_entry (commit_xid, id)"
    )
