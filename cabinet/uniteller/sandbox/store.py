"""Keep the sandbox state in its own SQLite file (stdlib sqlite3, one connection)."""

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS shops (
    shop_id TEXT PRIMARY KEY,
    password TEXT NOT NULL,
    login TEXT NOT NULL,
    notify_url TEXT NOT NULL DEFAULT '',
    status_url TEXT NOT NULL DEFAULT '',
    callback_fields TEXT NOT NULL DEFAULT '',
    recurrent_allowed INTEGER NOT NULL DEFAULT 1,
    partial_refund_allowed INTEGER NOT NULL DEFAULT 1,
    notify_balance INTEGER NOT NULL DEFAULT 0,
    fiscal INTEGER NOT NULL DEFAULT 0,
    fiscal_notify_url TEXT NOT NULL DEFAULT '',
    fiscal_protection INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS pay_sessions (
    token TEXT PRIMARY KEY,
    shop_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    used INTEGER NOT NULL DEFAULT 0,
    fiscal INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    shop_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount INTEGER NOT NULL,
    balance INTEGER NOT NULL,
    currency TEXT NOT NULL DEFAULT 'RUB',
    status TEXT NOT NULL,
    response_code TEXT NOT NULL DEFAULT '',
    bill_number TEXT NOT NULL DEFAULT '',
    approval_code TEXT NOT NULL DEFAULT '',
    card_masked TEXT NOT NULL DEFAULT '',
    card_expiry TEXT NOT NULL DEFAULT '',
    card_state TEXT NOT NULL DEFAULT 'ok',
    card_holder TEXT NOT NULL DEFAULT '',
    customer_id TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    middle_name TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '',
    pt_code TEXT NOT NULL DEFAULT '',
    emoney_type TEXT NOT NULL DEFAULT '',
    is_recurrent_start INTEGER NOT NULL DEFAULT 0,
    parent_shop_id TEXT NOT NULL DEFAULT '',
    parent_order_id TEXT NOT NULL DEFAULT '',
    preauth INTEGER NOT NULL DEFAULT 0,
    callback_fields TEXT NOT NULL DEFAULT '',
    callback_format TEXT NOT NULL DEFAULT '',
    fiscal INTEGER NOT NULL DEFAULT 0,
    receipt TEXT NOT NULL DEFAULT '',
    receipt_state TEXT NOT NULL DEFAULT '',
    public_url TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    authorized_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_shop_order ON orders (shop_id, order_id);
-- A recurrent charge counts its parent's failed charges of the day (Uniteller's cap).
CREATE INDEX IF NOT EXISTS orders_by_parent ON orders (parent_order_id, parent_shop_id);
CREATE UNIQUE INDEX IF NOT EXISTS orders_by_bill
    ON orders (bill_number) WHERE bill_number <> '';
CREATE TABLE IF NOT EXISTS refunds (
    id INTEGER PRIMARY KEY,
    order_row INTEGER NOT NULL REFERENCES orders (id),
    amount INTEGER NOT NULL,
    bill_number TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY,
    order_row INTEGER NOT NULL REFERENCES orders (id),
    status TEXT NOT NULL,
    url TEXT NOT NULL,
    params TEXT NOT NULL,
    format TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL DEFAULT 'notify',
    state TEXT NOT NULL DEFAULT 'pending',
    held INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    callback_id INTEGER NOT NULL REFERENCES callbacks (id),
    at REAL NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL,
    http_code INTEGER,
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS status_checks (
    id INTEGER PRIMARY KEY,
    order_row INTEGER NOT NULL REFERENCES orders (id),
    at REAL NOT NULL,
    url TEXT NOT NULL,
    http_code INTEGER,
    answer TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    ref INTEGER NOT NULL,
    due_at REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (done, due_at);
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY,
    order_row INTEGER NOT NULL REFERENCES orders (id),
    refund_row INTEGER REFERENCES refunds (id),
    fiscal_id TEXT NOT NULL UNIQUE,
    type INTEGER NOT NULL,
    fiscal_number INTEGER NOT NULL UNIQUE,
    fiscal_attr INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_by_order ON receipts (order_row);
"""
# Columns added after a table's first version: (table, column, definition). A
# database file from an older sandbox gets them on open.
ADDED_COLUMNS = (
    ("shops", "notify_balance", "INTEGER NOT NULL DEFAULT 0"),
    ("refunds", "bill_number", "TEXT NOT NULL DEFAULT ''"),
    ("shops", "fiscal", "INTEGER NOT NULL DEFAULT 0"),
    ("shops", "fiscal_notify_url", "TEXT NOT NULL DEFAULT ''"),
    ("shops", "fiscal_protection", "INTEGER NOT NULL DEFAULT 1"),
    ("pay_sessions", "fiscal", "INTEGER NOT NULL DEFAULT 0"),
    ("orders", "fiscal", "INTEGER NOT NULL DEFAULT 0"),
    ("orders", "receipt", "TEXT NOT NULL DEFAULT ''"),
    ("orders", "receipt_state", "TEXT NOT NULL DEFAULT ''"),
    ("orders", "public_url", "TEXT NOT NULL DEFAULT ''"),
    ("callbacks", "channel", "TEXT NOT NULL DEFAULT 'notify'"),
    # SBP: PaymentType (1 card, 13 SBP), the QR's id, a refund sent to the NSPK
    # and not settled yet (its amount and its receipt row).
    ("orders", "payment_type", "TEXT NOT NULL DEFAULT '1'"),
    ("orders", "qrc_id", "TEXT NOT NULL DEFAULT ''"),
    ("orders", "sbp_refund_pending", "INTEGER NOT NULL DEFAULT 0"),
    ("orders", "sbp_refund_receipt", "INTEGER NOT NULL DEFAULT 0"),
)


class Store:
    """One SQLite connection shared by all threads behind a lock."""

    def __init__(self, path: str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if path != ":memory:":
            # Shops' passwords live here: readable by the owner only (SQLite
            # gives its -wal and -shm files the same mode).
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._lock = threading.RLock()
        self._depth = 0
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL and a busy timeout let the CLI write while the server runs.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        # Under the write lock: a CLI and the server opening one old file at once
        # add each column once.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table, column, definition in ADDED_COLUMNS:
                rows = self._db.execute(f"PRAGMA table_info({table})")
                if column not in {row["name"] for row in rows}:
                    self._db.execute(
                        f"ALTER TABLE {table} ADD COLUMN {column} {definition}"
                    )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def tx(self):
        """Run a unit of work in one IMMEDIATE transaction (nested calls join it)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def all(self, sql: str, params=()) -> list[dict]:
        """Return every row of a query as dicts."""
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, params)]

    def one(self, sql: str, params=()) -> dict | None:
        """Return the first row of a query, or None."""
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def run(self, sql: str, params=()) -> sqlite3.Cursor:
        """Execute a statement and return its cursor (rowcount, lastrowid)."""
        with self._lock:
            return self._db.execute(sql, params)

    def insert(self, table: str, row: dict) -> int:
        """Insert a row given as a dict and return its id."""
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"
        return self.run(sql, tuple(row.values())).lastrowid

    def update(self, table: str, row_id: int, **values) -> None:
        """Set columns of one row by id."""
        assignments = ", ".join(f"{name} = ?" for name in values)
        sql = f"UPDATE {table} SET {assignments} WHERE id = ?"
        self.run(sql, (*values.values(), row_id))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
