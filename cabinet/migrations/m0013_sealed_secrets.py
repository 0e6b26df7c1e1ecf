"""Secrets at rest: seal the plain secrets of configurations and connectors."""

import json

from ..sealing import seal

# Table and the keys of its params JSON that are secrets, as the models say.
SEALED = {
    "module_configuration": ("password", "login"),
    "billing_connector": ("password", "secret"),
}


def upgrade(migrator, database):
    """Encrypt every plain secret (repeatable: a sealed one is left as it is)."""
    for table, keys in SEALED.items():
        rows = database.execute_sql(f"SELECT id, params FROM {table}").fetchall()
        for row_id, text in rows:
            params = json.loads(text or "{}")
            sealed = {k: seal(v) if k in keys else v for k, v in params.items()}
            if sealed != params:
                mark = database.param  # ? on SQLite, %s on PostgreSQL
                database.execute_sql(
                    f"UPDATE {table} SET params = {mark} WHERE id = {mark}",
                    (json.dumps(sealed, ensure_ascii=False), row_id),
                )
