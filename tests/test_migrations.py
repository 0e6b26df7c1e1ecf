"""Schema migrations: they build what models.py describes, and keep old data."""

import itertools
import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from peewee import SqliteDatabase

from cabinet import create_app, migrations, payments
from cabinet.db import db, open_database
from cabinet.models import (
    MODELS,
    Contract,
    LedgerEntry,
    ModuleConfiguration,
    TaskRun,
    Transaction,
)
from tests.helpers import in_app, redis_url

_schemas = itertools.count()


@pytest.fixture
def fresh_url(database_url, tmp_path):
    """Make a URL of an empty database of the kind under test; a factory."""
    made = []

    def make():
        if database_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path / f'fresh{next(_schemas)}.sqlite3'}"
        import psycopg2

        parts = urlsplit(database_url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
        base = urlunsplit(parts._replace(query=urlencode(query)))
        schema = f"mig_{os.getpid()}_{next(_schemas)}"
        connection = psycopg2.connect(base)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            cursor.execute(f"CREATE SCHEMA {schema}")
        made.append((connection, schema))
        query.append(("options", f"-csearch_path={schema}"))
        return urlunsplit(parts._replace(query=urlencode(query)))

    yield make
    for connection, schema in made:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        connection.close()


def app_on(url, redis):
    """Build the app on a database URL (no test schema reset, unlike make_app)."""
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "DATABASE_URL": url,
            "REDIS_URL": redis_url(redis),
            "PUBLIC_URL": "http://cabinet.test",
        }
    )


def close(database):
    """Close a database's connections (all of them, if it pools)."""
    getattr(database, "close_all", database.close)()


def flask(app, *args):
    """Run a flask command of the app; return the result."""
    result = app.test_cli_runner().invoke(args=list(args))
    with app.app_context():
        if not db.is_closed():
            db.close()
    return result


def test_migrations_create_every_table_column_and_index_of_the_models(fresh_url):
    migrated, modelled = open_database(fresh_url()), open_database(fresh_url())
    migrations.upgrade(migrated)
    with modelled.bind_ctx(MODELS):
        modelled.create_tables(MODELS)
    got, want = migrations.schema_of(migrated), migrations.schema_of(modelled)
    close(migrated)
    close(modelled)
    assert set(want) - set(got) == set(), "models.py has tables no migration creates"
    assert set(got) - set(want) == set(), "migrations create tables models.py lacks"
    for table in want:
        missing = set(want[table]["columns"]) - set(got[table]["columns"])
        assert not missing, f"{table}: models.py has columns no migration adds"
        for column, shape in want[table]["columns"].items():
            assert got[table]["columns"][column] == shape, f"{table}.{column}"
        assert got[table]["columns"] == want[table]["columns"], table
        assert got[table]["indexes"] == want[table]["indexes"], f"{table}: indexes"
        assert got[table]["keys"] == want[table]["keys"], f"{table}: foreign keys"


# No explicit ids: the sequences must stay in step, as in a real database.
FIRST_SCHEMA_DATA = [
    "INSERT INTO module_instance (code, name, created_at) "
    "VALUES ('isp', 'ISP', '2026-01-10 10:00:00')",
    "INSERT INTO module_configuration (instance_id, name, params, is_active, "
    'created_by, created_at) VALUES (1, \'main\', \'{"shop_id": "00000001", '
    '"password": "pw", "gateway_url": "http://gateway.test"}\', TRUE, \'cli\', '
    "'2026-01-10 10:00:00')",
    "INSERT INTO contract (number, name, password_hash, balance, instance_id, "
    "created_at) VALUES ('1001', 'Иванов', 'x', 50000, 1, '2026-01-10 10:00:00')",
    'INSERT INTO "transaction" (order_id, contract_id, instance_id, '
    "configuration_id, kind, amount, status, needs_review, created_at, updated_at) "
    "VALUES ('P1001-old', 1, 1, 1, 'payment', 50000, 'paid', FALSE, "
    "'2026-01-10 10:00:00', '2026-01-10 10:01:00'), "
    "('P1001-open', 1, 1, 1, 'payment', 30000, 'new', FALSE, "
    "'2026-01-11 10:00:00', '2026-01-11 10:00:00')",
    "INSERT INTO ledger_entry (contract_id, transaction_id, kind, amount, key, "
    "created_at) VALUES (1, 1, 'credit', 50000, 'credit:P1001-old', "
    "'2026-01-10 10:01:00')",
]


def test_a_database_of_the_first_schema_upgrades_with_its_data(fresh_url, redis):
    url = fresh_url()
    database = open_database(url)
    assert migrations.upgrade(database, target=1) == (0, 1)
    for statement in FIRST_SCHEMA_DATA:
        database.execute_sql(statement)
    close(database)

    app = app_on(url, redis)
    result = flask(app, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert f"from version 1 to {migrations.LATEST}" in result.output
    assert "nothing to do" in flask(app, "db", "upgrade").output
    assert f"database: {migrations.LATEST}" in flask(app, "db", "version").output

    with in_app(app):
        # Migration 13 sealed the plain shop password; the code reads it plain.
        (raw,) = db.execute_sql("SELECT params FROM module_configuration").fetchone()
        assert '"pw"' not in raw and "sealed:v1:" in raw
        configuration = ModuleConfiguration.get(ModuleConfiguration.name == "main")
        assert configuration.params["password"] == "pw"
        contract = Contract.by_number("1001")
        assert contract.balance == 50000
        old = Transaction.by_order_id("P1001-old")
        assert (old.status, old.check_attempts, old.next_check_at) == ("paid", 0, None)
        assert LedgerEntry.select().count() == 1
        # The current code works on the upgraded rows: a late callback credits once.
        assert (
            payments.apply_status("P1001-open", "paid", source="callback").result
            == "credited"
        )
        assert Contract.by_number("1001").balance == 80000
        # The payments feed's order: the old entry first (0), the new one by the
        # id of the transaction that wrote it (PostgreSQL; SQLite needs none).
        xids = [e.commit_xid for e in LedgerEntry.select().order_by(LedgerEntry.id)]
        if url.startswith("postgres"):
            assert xids[0] == 0 and xids[1] > 0
        else:
            assert xids == [None, None]
        TaskRun.create(task="status-check", slot="manual:x")
        versions = [
            row[0]
            for row in db.execute_sql(
                "SELECT version FROM schema_version ORDER BY version"
            )
        ]
    assert versions == list(migrations.MIGRATIONS)


def test_init_db_creates_the_latest_schema_and_records_it(fresh_url, redis):
    app = app_on(fresh_url(), redis)
    result = flask(app, "init-db")
    assert result.exit_code == 0, result.output
    assert f"schema version {migrations.LATEST}" in result.output
    assert flask(app, "init-db").exit_code == 0
    with in_app(app):
        assert migrations.current_version(db.obj) == migrations.LATEST


def test_a_database_made_before_versions_were_kept_is_recognised(fresh_url, redis):
    url = fresh_url()
    database = open_database(url)
    migrations.upgrade(database, target=2)
    database.execute_sql("DROP TABLE schema_version")
    close(database)
    result = flask(app_on(url, redis), "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert f"from version 2 to {migrations.LATEST}" in result.output


def test_the_app_refuses_a_schema_newer_than_it_knows(fresh_url, redis):
    url = fresh_url()
    app = app_on(url, redis)
    assert flask(app, "init-db").exit_code == 0
    database = open_database(url)
    database.execute_sql(
        "INSERT INTO schema_version (version, name, applied_at) "
        f"VALUES ({migrations.LATEST + 1}, 'm9999_future', '2030-01-01 00:00:00')"
    )
    close(database)
    with pytest.raises(migrations.SchemaError, match="newer than this release"):
        app_on(url, redis)


def test_migrations_apply_to_a_scratch_sqlite_database_step_by_step():
    database = SqliteDatabase(":memory:")
    # Numbers are handed out to branches in advance: one may be missing here.
    previous = 0
    for number in migrations.MIGRATIONS:
        assert migrations.upgrade(database, target=number) == (previous, number)
        previous = number
    assert migrations.upgrade(database) == (migrations.LATEST, migrations.LATEST)
