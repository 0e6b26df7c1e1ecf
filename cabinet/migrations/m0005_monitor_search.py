"""The monitor's name search index and its covering index for totals and the chart."""

from ..contract_search import create_search


def upgrade(migrator, database):
    """Index contract numbers and names by trigrams; cover the monitor's sums."""
    # IF NOT EXISTS: safe to repeat, like the rest of this migration (the name
    # is the one peewee gives the model's index).
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS "
        "transaction_instance_id_created_at_status_contract_id_amount "
        'ON "transaction" (instance_id, created_at, status, contract_id, amount)'
    )
    create_search(database)
