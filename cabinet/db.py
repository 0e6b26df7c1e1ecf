"""The database: late binding, per-request connections, write units."""

import os
import random
import threading
import time
from contextlib import ExitStack, contextmanager

from flask import request
from peewee import DatabaseProxy, OperationalError, SqliteDatabase
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

db = DatabaseProxy()
# Connections a process keeps open for reuse: more than its threads.
POOL_SIZE = 32
POOL_STALE_SECONDS = 300
POOL_WAIT_SECONDS = 30
# How long an SQLite statement waits for another writer's lock before "database
# is locked": far beyond any unit of ours (they write in batches).
SQLITE_BUSY_MS = 10000


def open_database(url):
    """Open a peewee database from a URL, tuned for concurrent writers."""
    if url.startswith("sqlite"):
        # sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy spells it
        path = url.split(":///", 1)[1] if ":///" in url else ":memory:"
        if path != ":memory:" and not path.startswith("file:"):
            _create_private(path)
        # WAL lets readers run beside a writer; the busy timeout makes writers
        # queue instead of failing at once.
        # Pooled: a connection per request cost more than the request (opening
        # it, and a WAL checkpoint each time the last one closed).
        return PooledSqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": SQLITE_BUSY_MS,
                "foreign_keys": 1,
                "synchronous": "normal",
            },
            max_connections=POOL_SIZE,
            stale_timeout=POOL_STALE_SECONDS,
            timeout=POOL_WAIT_SECONDS,  # waiting for a free pooled connection
            check_same_thread=False,
        )
    if not url.startswith(("postgres://", "postgresql://")):
        raise ValueError("DATABASE_URL: sqlite:///path or postgresql://user@host/db")
    # PostgreSQL starts a backend process per connection: reuse them.
    # More threads than pooled connections wait for one instead of failing.
    return RecentlyUsedPool(
        max_connections=POOL_SIZE,
        stale_timeout=POOL_STALE_SECONDS,
        timeout=POOL_WAIT_SECONDS,
        **parse(url),
    )


def _create_private(path):
    """Create a database file readable by its owner only (it holds shop passwords).

    Like instance/secret_key; SQLite gives its -wal and -shm files the same mode.
    An existing file keeps its mode; a missing folder is SQLite's error to report.
    """
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except FileNotFoundError:
        pass


class RecentlyUsedPool(PooledPostgresqlDatabase):
    """A PostgreSQL pool that pings only connections that sat idle for a while.

    peewee asks the server (SELECT 1) before handing out any pooled connection,
    holding the pool's lock for the round trip: one more statement on every
    request, and requests queue behind it. A connection given back moments ago
    and idle is taken as alive; if the server went away since, the request's
    first statement fails as it would mid-request.
    """

    PING_AFTER_SECONDS = 10

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._returned = {}  # id(connection) -> when it was given back

    def _can_reuse(self, conn):
        reusable = super()._can_reuse(conn)
        self._returned[id(conn)] = time.monotonic()
        return reusable

    def _is_closed(self, conn):
        returned = self._returned.pop(id(conn), None)
        if (
            not conn.closed
            and returned is not None
            and time.monotonic() - returned < self.PING_AFTER_SECONDS
            and conn.get_transaction_status() == TRANSACTION_STATUS_IDLE
        ):
            return False
        return super()._is_closed(conn)


def init_app(app):
    """Bind the database to the app and hook the connection to each request."""
    database = open_database(app.config["DATABASE_URL"])
    db.initialize(database)
    app.extensions["database"] = database

    @app.before_request
    def _connect():
        # The ops probes must answer (and say what is down) without a database.
        if request.blueprint != "ops":
            db.connect(reuse_if_open=True)

    @app.teardown_appcontext
    def _close(exc):
        if not db.is_closed():
            db.close()


_unit = threading.local()
# How long an outermost SQLite unit keeps asking for the write lock when BEGIN
# answers "database is locked" at once (it can, under load, without waiting out
# the busy timeout): nothing of the unit has run yet, so asking again is safe.
BEGIN_RETRY_SECONDS = 10


def _begin(stack):
    """Open the unit's transaction on `stack`; on SQLite take the write lock at once."""
    if not isinstance(db.obj, SqliteDatabase):
        stack.enter_context(db.atomic())
        return
    # A deferred SQLite transaction that upgrades to a writer fails with
    # "database is locked" instead of waiting; IMMEDIATE queues at BEGIN.
    deadline = time.monotonic() + BEGIN_RETRY_SECONDS
    while True:
        try:
            stack.enter_context(db.atomic("IMMEDIATE"))
            return
        except OperationalError as exc:
            if (
                db.in_transaction()
                or "locked" not in str(exc)
                or time.monotonic() >= deadline
            ):
                raise
        time.sleep(0.005 + random.random() * 0.02)


# How long retrying() runs a unit again from the top while the database says it
# is locked (SQLite, once the busy timeout and the BEGIN retry are spent) or that
# the unit lost a deadlock or a serialization conflict (PostgreSQL).
UNIT_RETRY_SECONDS = 20
_TRANSIENT = ("database is locked", "deadlock detected", "could not serialize")


def retrying(unit, *args, **kwargs):
    """Call `unit` (a function that opens its own write unit), again while locked.

    A unit that failed this way rolled back whole, so running it again is safe;
    inside another unit nothing is retried (the outer one would be half done).
    """
    deadline = time.monotonic() + UNIT_RETRY_SECONDS
    while True:
        try:
            return unit(*args, **kwargs)
        except OperationalError as exc:
            if (
                getattr(_unit, "depth", 0)
                or not any(text in str(exc) for text in _TRANSIENT)
                or time.monotonic() >= deadline
            ):
                raise
        time.sleep(0.01 + random.random() * 0.04)


@contextmanager
def write_unit():
    """Run a unit of work in a transaction that takes the write lock at once.

    Callbacks registered with on_commit() run after the outermost unit commits
    (and are dropped if it rolls back): a job is enqueued only once its rows exist.
    """
    depth = getattr(_unit, "depth", 0)
    if depth == 0:
        _unit.callbacks = []
    _unit.depth = depth + 1
    try:
        with ExitStack() as stack:
            _begin(stack)
            yield
    except BaseException:
        if depth == 0:
            _unit.callbacks = []
        raise
    finally:
        _unit.depth = depth
    if depth == 0:
        callbacks, _unit.callbacks = _unit.callbacks, []
        for callback in callbacks:
            callback()


def on_commit(callback):
    """Call `callback` once the current write unit commits (at once outside one)."""
    if getattr(_unit, "depth", 0):
        _unit.callbacks.append(callback)
    else:
        callback()
