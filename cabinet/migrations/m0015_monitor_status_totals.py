"""The monitor's totals of a status group: a covering index led by the status."""


def upgrade(migrator, database):
    """Index (instance, status, created_at, contract, amount) (repeatable)."""
    # The name is the one peewee gives the model's index.
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS "
        "transaction_instance_id_status_created_at_contract_id_amount "
        'ON "transaction" (instance_id, status, created_at, contract_id, amount)'
    )
