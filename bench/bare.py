"""One `paid` callback's statements run by the bare driver: the storage's limit.

Step 1's baseline: what the callback's unit writes, with nothing of the app
around it (no HTTP, no signature, no peewee). The statements are the ones a
callback runs (tests/test_bench_bare.py compares them with the SQL peewee logs
during one), each callback in one transaction, with the app's durability
settings: SQLite in WAL with `synchronous=normal` (cabinet/db.py), PostgreSQL as
configured (default: `synchronous_commit=on`).
"""

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime

import psycopg2

# (name, SQL in the sqlite3 paramstyle); psycopg2's is the same with %s for ?.
ORDER = (
    'SELECT "t1"."id", "t1"."order_id", "t1"."contract_id", "t1"."instance_id", '
    '"t1"."configuration_id", "t1"."kind", "t1"."payment_type", "t1"."amount", '
    '"t1"."status", "t1"."bill_number", "t1"."approval_code", "t1"."response_code", '
    '"t1"."error_code", "t1"."message", "t1"."needs_review", "t1"."review_reason", '
    '"t1"."check_attempts", "t1"."next_check_at", "t1"."created_at", '
    '"t1"."updated_at", "t2"."id", "t2"."instance_id", "t2"."name", "t2"."params", '
    '"t2"."is_active", "t2"."created_by", "t2"."created_at", "t2"."activated_by", '
    '"t2"."activated_at", "t3"."id", "t3"."code", "t3"."name", "t3"."created_at", '
    '"t4"."id", "t4"."number", "t4"."name", "t4"."email", "t4"."phone", '
    '"t4"."password_hash", "t4"."balance", "t4"."instance_id", '
    '"t4"."session_generation", "t4"."created_at", "t4"."status", "t4"."source", '
    '"t4"."billing_balance", "t4"."billing_balance_at", "t4"."updated_at" '
    'FROM "transaction" AS "t1" '
    'INNER JOIN "module_configuration" AS "t2" '
    'ON ("t1"."configuration_id" = "t2"."id") '
    'INNER JOIN "module_instance" AS "t3" ON ("t1"."instance_id" = "t3"."id") '
    'INNER JOIN "contract" AS "t4" ON ("t1"."contract_id" = "t4"."id") '
    'WHERE (("t1"."order_id" = ?) AND ("t3"."code" = ?)) LIMIT ?'
)
SET_STATUS = (
    'UPDATE "transaction" SET "status" = ?, '
    '"bill_number" = COALESCE(?, "transaction"."bill_number"), '
    '"approval_code" = COALESCE(?, "transaction"."approval_code"), '
    '"response_code" = COALESCE(?, "transaction"."response_code"), '
    '"error_code" = COALESCE(?, "transaction"."error_code"), '
    '"message" = COALESCE(?, "transaction"."message"), "updated_at" = ? '
    'WHERE (("transaction"."id" = ?) AND ("transaction"."status" IN (?, ?, ?, ?, ?)))'
)
EVENTS = (
    'INSERT INTO "transaction_event" ("transaction_id", "instance_id", "order_id", '
    '"source", "kind", "old_status", "new_status", "fields", "note", "created_at") '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
LEDGER = (
    'INSERT INTO "ledger_entry" ("contract_id", "transaction_id", "kind", "amount", '
    '"key", "created_at") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT ("key") DO NOTHING'
)
BALANCE = (
    'UPDATE "contract" SET "balance" = ("contract"."balance" + ?) '
    'WHERE ("contract"."id" = ?)'
)
CONNECTORS = (
    'SELECT "t1"."id", "t1"."kind", "t1"."params" FROM "billing_connector" AS "t1" '
    'WHERE (("t1"."instance_id" = ?) AND ("t1"."is_active" = ?))'
)
DELIVERY = (
    'INSERT INTO "billing_delivery" ("connector_id", "transaction_id", "refund_id", '
    '"kind", "key", "amount", "account", "state", "attempts", "next_attempt_at", '
    '"created_at", "updated_at") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) '
    'RETURNING "billing_delivery"."id"'
)
# On PostgreSQL peewee asks for the new ids of these two inserts as well.
RETURNING_ON_PG = {EVENTS: ' RETURNING "transaction_event"."id"'}
RETURNING_ON_PG[LEDGER] = ' RETURNING "ledger_entry"."id"'
OPEN = ("new", "waiting", "authorized", "failed", "expired")


def statements(postgresql):
    """The callback's statements, by name, in the database's paramstyle."""
    named = {
        "order": ORDER,
        "set_status": SET_STATUS,
        "events": EVENTS,
        "ledger": LEDGER,
        "balance": BALANCE,
        "connectors": CONNECTORS,
        "delivery": DELIVERY,
    }
    if not postgresql:
        return named
    return {
        name: sql.replace("?", "%s") + RETURNING_ON_PG.get(sql, "")
        for name, sql in named.items()
    }


def _now():
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_now():
    # What peewee's sqlite3 adapter stores: the ISO form with a space.
    return str(_now())


class _Connection:
    """One connection running whole callbacks, each in its own transaction."""

    def __init__(self, url, code):
        self.postgresql = not url.startswith("sqlite")
        self.sql = statements(self.postgresql)
        self.code = code
        if self.postgresql:
            self.conn = psycopg2.connect(url)  # not autocommit: BEGIN ... COMMIT
            self.now = _now
            self.true = True
        else:
            path = url.split(":///", 1)[1]
            self.conn = sqlite3.connect(
                path, isolation_level=None, timeout=10, check_same_thread=False
            )
            for pragma in (
                "journal_mode = wal",
                "busy_timeout = 10000",
                "foreign_keys = 1",
                "synchronous = normal",  # as cabinet/db.py opens it
            ):
                self.conn.execute(f"PRAGMA {pragma}")
            self.now = _sqlite_now
            self.true = 1

    def callback(self, n, order_id):
        """Apply one `paid` callback to an open order, in one transaction."""
        sql, cursor = self.sql, self.conn.cursor()
        if not self.postgresql:
            cursor.execute("BEGIN IMMEDIATE")
        cursor.execute(sql["order"], (order_id, self.code, 1))
        row = cursor.fetchone()
        tid, contract, instance, amount = row[0], row[2], row[3], row[7]
        number = row[34]
        bill, approval = f"{n:012d}", f"{n % 10**6:06d}"
        fields = json.dumps(
            {
                "Order_ID": order_id,
                "Status": "paid",
                "BillNumber": bill,
                "ApprovalCode": approval,
                "Total": "500.00",
                "Signature": "0" * 32,
            }
        )
        received_at = self.now()
        cursor.execute(
            sql["set_status"],
            ("paid", bill, approval, None, None, None, self.now(), tid, *OPEN),
        )
        assert cursor.rowcount == 1, order_id
        base = (tid, instance, order_id, "callback")
        cursor.execute(
            sql["events"],
            (
                *base,
                *("received", "new", "paid", fields, None, received_at),
                *base,
                *("state", "new", "paid", None, None, self.now()),
            ),
        )
        key = f"credit:{order_id}"
        cursor.execute(
            sql["ledger"], (contract, tid, "credit", amount, key, self.now())
        )
        assert cursor.rowcount == 1, order_id
        cursor.execute(sql["balance"], (amount, contract))
        # As the outbox's listener: rows only for active connectors, if any.
        cursor.execute(sql["connectors"], (instance, self.true))
        now = self.now()
        for connector, _kind, _params in cursor.fetchall():
            cursor.execute(
                sql["delivery"],
                (connector, tid, None, "credit", f"credit:{tid}", amount, number)
                + ("pending", 0, now, now, now),
            )
            cursor.fetchall()
        if self.postgresql:
            self.conn.commit()
        else:
            cursor.execute("COMMIT")

    def close(self):
        self.conn.close()


def rate(url, code, order_ids, connections=1, seconds=8.0):
    """Callbacks/s over distinct open orders by `connections` threads, each its own.

    Stops after `seconds` or when the orders run out, whichever comes first.
    """
    orders = iter(enumerate(order_ids))
    lock = threading.Lock()
    done, failures = [0], []
    workers = [_Connection(url, code) for _ in range(connections)]
    deadline = [0.0]

    def work(connection):
        try:
            while time.perf_counter() < deadline[0]:
                with lock:
                    item = next(orders, None)
                if item is None:
                    return
                connection.callback(*item)
                with lock:
                    done[0] += 1
        except Exception as exc:  # reported to the caller, not lost in a thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    started = time.perf_counter()
    deadline[0] = started + seconds
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.close()
    if failures:
        raise failures[0]
    return done[0] / elapsed, done[0]
