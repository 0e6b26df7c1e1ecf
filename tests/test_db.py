"""The database layer: pooled connections checked when it matters; write units."""

import sqlite3
import threading

import psycopg2
import pytest
from peewee import OperationalError

from cabinet.db import RecentlyUsedPool, db, open_database, retrying, write_unit
from cabinet.models import Contract


def backend_pid():
    with db.connection_context():
        return db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def test_a_connection_back_from_a_request_is_reused_without_a_ping(
    app, database_url, monkeypatch
):
    if not isinstance(db.obj, RecentlyUsedPool):
        pytest.skip("PostgreSQL's pool")
    pings = []
    adapter = db.obj._adapter
    real = adapter.is_connection_closed
    monkeypatch.setattr(
        adapter, "is_connection_closed", lambda conn: pings.append(1) or real(conn)
    )
    with app.app_context():
        first = backend_pid()
        assert backend_pid() == first and not pings
        # Idle for longer than PING_AFTER_SECONDS: asked before it is handed out,
        # and a connection the server has ended is replaced, not handed out.
        monkeypatch.setattr(RecentlyUsedPool, "PING_AFTER_SECONDS", 0)
        killer = psycopg2.connect(database_url)
        killer.autocommit = True
        killer.cursor().execute("SELECT pg_terminate_backend(%s)", (first,))
        killer.close()
        assert backend_pid() != first and pings


def test_only_sqlite_and_postgresql_urls_are_accepted():
    with pytest.raises(ValueError, match="DATABASE_URL"):
        open_database("mysql://root@localhost/cabinet")


def test_a_worker_builds_every_prepared_query_before_it_forks(app):
    from cabinet.prepared import Prepared

    with app.app_context():
        Prepared.build_all()
        built = list(Prepared._every)
        assert built and all(p._compiled[0] is db.obj for p in built)


@pytest.mark.sqlite_only
def test_a_unit_whose_begin_is_refused_at_once_asks_again(app):
    """BEGIN may answer "database is locked" without waiting: the unit asks again."""
    with app.app_context(), db.connection_context():
        other = sqlite3.connect(
            db.obj.database, isolation_level=None, check_same_thread=False
        )
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        db.execute_sql("PRAGMA busy_timeout = 0")  # so BEGIN is refused at once
        try:
            threading.Timer(0.3, other.execute, ["COMMIT"]).start()
            with write_unit():
                assert Contract.select().count() == 0
        finally:
            db.execute_sql("PRAGMA busy_timeout = 10000")
            other.close()


def test_a_locked_unit_runs_again_from_the_top_but_never_inside_another(app):
    """retrying() starts a unit over on "database is locked", not a nested one."""
    calls = []

    def unit(fail_times):
        calls.append(1)
        with write_unit():
            if len(calls) <= fail_times:
                raise OperationalError("database is locked")
            return Contract.select().count()

    with app.app_context(), db.connection_context():
        assert retrying(unit, 2) == 0 and len(calls) == 3
        calls.clear()
        with write_unit(), pytest.raises(OperationalError):
            retrying(unit, 1)
        assert len(calls) == 1

    def broken():
        calls.append(1)
        raise OperationalError("no such table: contract")

    calls.clear()
    with pytest.raises(OperationalError):
        retrying(broken)  # not a lock: not tried again
    assert len(calls) == 1
