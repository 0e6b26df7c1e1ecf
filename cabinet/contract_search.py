"""The console's contract search: a trigram index of numbers and names.

SQLite keeps an FTS5 `trigram` table in step by triggers; PostgreSQL a pg_trgm
GIN index. Storage-level SQL, below the models (which create it with the
contract table) and the migration that added it.
"""

import logging

from peewee import DatabaseError, SqliteDatabase

# The warning keeps the logger name of the migration that first logged it.
log = logging.getLogger("cabinet.migrations.m0005_monitor_search")

# The search index; Contract.create_table() and migration m0005 both build it
# through create_search(), so a new database and an upgraded one agree.
SQLITE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS contract_search USING fts5("
    "number, name, content='contract', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS contract_search_insert AFTER INSERT ON contract "
    "BEGIN INSERT INTO contract_search (rowid, number, name) "
    "VALUES (new.id, new.number, new.name); END",
    "CREATE TRIGGER IF NOT EXISTS contract_search_update "
    "AFTER UPDATE OF number, name ON contract "
    "BEGIN INSERT INTO contract_search (contract_search, rowid, number, name) "
    "VALUES ('delete', old.id, old.number, old.name); "
    "INSERT INTO contract_search (rowid, number, name) "
    "VALUES (new.id, new.number, new.name); END",
    "CREATE TRIGGER IF NOT EXISTS contract_search_delete AFTER DELETE ON contract "
    "BEGIN INSERT INTO contract_search (contract_search, rowid, number, name) "
    "VALUES ('delete', old.id, old.number, old.name); END",
    "INSERT INTO contract_search (contract_search) VALUES ('rebuild')",
]


def _trigram_schema(database):
    """Return the schema pg_trgm lives in, installing it if allowed; None if not."""
    found = database.execute_sql(
        "SELECT extnamespace::regnamespace::text FROM pg_extension "
        "WHERE extname = 'pg_trgm'"
    ).fetchone()
    if found:
        return found[0]
    try:
        with database.atomic():  # a savepoint: a refusal must not end the upgrade
            # In public, not the current schema: dropping a schema drops the
            # extensions in it, and with them every other schema's indexes.
            database.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    except DatabaseError as exc:
        log.warning(
            "pg_trgm not installed (%s): the contract search reads the "
            "whole contract table",
            str(exc).strip().splitlines()[0],
        )
        return None
    return "public"


def create_search(database):
    """Index contract numbers and names by trigrams (kept in step by the engine)."""
    if isinstance(database, SqliteDatabase):
        exists = database.table_exists("contract_search")
        for statement in SQLITE if not exists else SQLITE[:-1]:
            database.execute_sql(statement)
        return
    schema = _trigram_schema(database)
    if schema:
        ops = f'"{schema}".gin_trgm_ops'
        database.execute_sql(
            "CREATE INDEX IF NOT EXISTS contract_search_trigram ON contract "
            f"USING gin (LOWER(number) {ops}, LOWER(name) {ops})"
        )
