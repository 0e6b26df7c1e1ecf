"""The flagged orders the console counts on every page: an index, not a scan."""


def upgrade(migrator, database):
    """Index (needs_review, updated_at) (repeatable)."""
    # The name is the one peewee gives the model's index.
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS transaction_needs_review_updated_at "
        'ON "transaction" (needs_review, updated_at)'
    )
