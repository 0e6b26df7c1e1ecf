"""The data generator: bulk inserts (COPY, executemany), the same data per seed."""

import io
import random
import sqlite3
import time
from datetime import UTC, timedelta

from werkzeug.security import generate_password_hash

from cabinet import accounts, configurations
from cabinet.clock import utcnow
from cabinet.db import db
from cabinet.models import Autopay, Contract, Transaction
from cabinet.uniteller import signatures

from . import SHOP

# The monitor's name filter looks for SURNAMES[0]; about 5% of contracts carry it.
SURNAMES = [
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
]
SURNAME_WEIGHTS = [5] + [95 / 19] * 19
INITIALS = "АБВГДЕЖЗИКЛМНОПРСТ"
STATUS_WEIGHTS = {"paid": 80, "failed": 9, "canceled": 2, "expired": 6, "authorized": 3}
PASSWORD = "bench-pass"
OPERATOR = ("bench", "bench-operator-pass")
HISTORY_CONTRACT = "H0000001"
TX_FIELDS = [
    Transaction.order_id,
    Transaction.contract,
    Transaction.instance,
    Transaction.configuration,
    Transaction.kind,
    Transaction.amount,
    Transaction.status,
    Transaction.bill_number,
    Transaction.approval_code,
    Transaction.response_code,
    Transaction.created_at,
    Transaction.updated_at,
    Transaction.next_check_at,
]


class Seeder:
    """Fill a fresh bench database; every random choice comes from one seeded RNG."""

    def __init__(self, seed, postgres):
        self.rng = random.Random(seed)
        self.postgres = postgres
        self.now = utcnow().replace(microsecond=0)
        self.rates = {}  # what -> rows per second, for the report

    def insert(self, what, model, fields, rows):
        """Insert rows (tuples in `fields` order) in bulk: COPY on PostgreSQL,
        executemany on SQLite, in one transaction; the model's defaults fill the rest.
        """
        started = time.perf_counter()
        given = {field.name for field in fields}
        rest = [
            field
            for field in model._meta.sorted_fields
            if field.name not in given and field in model._meta.defaults
        ]
        defaults = []
        for field in rest:
            default = model._meta.defaults[field]
            defaults.append(field.db_value(default() if callable(default) else default))
        columns = [field.column_name for field in (*fields, *rest)]
        converters = [field.db_value for field in fields]
        values = [
            tuple(
                convert(value) for convert, value in zip(converters, row, strict=True)
            )
            + tuple(defaults)
            for row in rows
        ]
        with db.atomic():
            if self.postgres:
                self._copy(model._meta.table_name, columns, values)
            else:
                placeholders = ", ".join("?" * len(columns))
                db.cursor().executemany(
                    f'INSERT INTO "{model._meta.table_name}" '
                    f"({', '.join(columns)}) VALUES ({placeholders})",
                    values,
                )
        elapsed = time.perf_counter() - started
        self.rates[what] = (len(rows), len(rows) / elapsed if elapsed else 0)

    def _copy(self, table, columns, values):
        """Stream rows into a PostgreSQL table with COPY (text format)."""
        buffer = io.StringIO()
        for row in values:
            buffer.write("\t".join(_copy_text(value) for value in row))
            buffer.write("\n")
        buffer.seek(0)
        db.cursor().copy_expert(
            f'COPY "{table}" ({", ".join(columns)}) FROM STDIN', buffer
        )

    def base(self, gateway_url, contracts, transactions, history):
        """An instance, its configuration, an operator, contracts and transactions."""
        self.instance = configurations.add_instance("isp", "Bench ISP")
        self.configuration = configurations.add_configuration(
            self.instance,
            "main",
            [
                f"shop_id={SHOP['shop_id']}",
                f"login={SHOP['login']}",
                f"password={SHOP['password']}",
                f"gateway_url={gateway_url}",
                "autopay_weekly=yes",
                "autopay_monthly=yes",
                "max_amount=100000.00",
            ],
            activate=True,
        )
        accounts.add_operator(OPERATOR[0], OPERATOR[1], admin=True)
        password_hash = generate_password_hash(PASSWORD)
        rows = [(HISTORY_CONTRACT, "Историев И. И.", password_hash, self.instance.id)]
        for n in range(1, contracts + 1):
            surname = self.rng.choices(SURNAMES, SURNAME_WEIGHTS)[0]
            name = (
                f"{surname} {self.rng.choice(INITIALS)}. {self.rng.choice(INITIALS)}."
            )
            rows.append((f"B{n:07d}", name, password_hash, self.instance.id))
        self.insert(
            "contracts",
            Contract,
            [Contract.number, Contract.name, Contract.password_hash, Contract.instance],
            rows,
        )
        ids = [
            c.id
            for c in Contract.select(Contract.id)
            .where(Contract.number != HISTORY_CONTRACT)
            .order_by(Contract.id)
        ]
        self.contract_ids = ids
        self.history_id = Contract.by_number(HISTORY_CONTRACT).id
        statuses, weights = zip(*STATUS_WEIGHTS.items(), strict=True)
        rows = []
        for n in range(transactions):
            contract = self.rng.choice(ids)
            rows.append(self._transaction(f"S{n:08d}", contract, statuses, weights))
        for n in range(history):
            rows.append(
                self._transaction(f"H{n:08d}", self.history_id, statuses, weights)
            )
        # In the order they were made, as a live database holds them: ids grow
        # with time (and the indexes fill in order).
        rows.sort(key=lambda row: row[10])
        self.insert("transactions", Transaction, TX_FIELDS, rows)

    def _transaction(self, order_id, contract, statuses, weights, days=365):
        created = self.now - timedelta(seconds=self.rng.randrange(days * 86400))
        status = self.rng.choices(statuses, weights)[0]
        paid = status in ("paid", "authorized", "canceled")
        return (
            order_id,
            contract,
            self.instance.id,
            self.configuration.id,
            "payment",
            self.rng.randrange(100, 300_000) * 100,
            status,
            f"{self.rng.randrange(10**12):012d}" if paid else None,
            f"{self.rng.randrange(10**6):06d}" if paid else None,
            "AS000" if paid else ("AS100" if status == "failed" else None),
            created,
            created,
            None,
        )

    def callbacks(self, count, amount=50000, prefix="CB"):
        """Open orders and their signed `paid` callbacks (form bodies), one each."""
        bodies = []
        for n, order_id in enumerate(self.callback_orders(count, amount, prefix)):
            bill, approval, total = f"{n:012d}", f"{n % 10**6:06d}", "500.00"
            signature = signatures.callback_signature(
                SHOP["password"], order_id, "paid", [bill, approval, total]
            )
            bodies.append(
                f"Order_ID={order_id}&Status=paid&BillNumber={bill}"
                f"&ApprovalCode={approval}&Total={total}"
                f"&Signature={signature}"
            )
        return bodies

    def callback_orders(self, count, amount=50000, prefix="CB"):
        """Open orders a `paid` callback may credit; return their order ids."""
        rows = []
        for n in range(count):
            order_id = f"{prefix}{n:08d}"
            rows.append(
                (
                    order_id,
                    self.rng.choice(self.contract_ids),
                    self.instance.id,
                    self.configuration.id,
                    "payment",
                    amount,
                    "new",
                    None,
                    None,
                    None,
                    self.now,
                    self.now,
                    None,
                )
            )
        self.insert(f"callback orders {prefix}", Transaction, TX_FIELDS, rows)
        return [row[0] for row in rows]

    def autopays(self, count, today, amount=50000):
        """Active monthly autopays due today, each with its paid parent order."""
        contracts = self.contract_ids[:count]
        bindings = [
            (
                f"BIND{n:08d}",
                contract,
                self.instance.id,
                self.configuration.id,
                "bind",
                1000,
                "paid",
                f"9{n:011d}",
                "123456",
                "AS000",
                self.now - timedelta(days=40),
                self.now - timedelta(days=40),
                None,
            )
            for n, contract in enumerate(contracts)
        ]
        self.insert("parent orders", Transaction, TX_FIELDS, bindings)
        parents = dict(
            Transaction.select(Transaction.contract, Transaction.id)
            .where(Transaction.kind == "bind")
            .tuples()
        )
        since = self.now - timedelta(days=40)
        rows = [
            (contract, "monthly", today.day, amount, "active", parents[contract], since)
            for contract in contracts
        ]
        self.insert(
            "autopays",
            Autopay,
            [
                Autopay.contract,
                Autopay.mode,
                Autopay.day_of_month,
                Autopay.amount,
                Autopay.state,
                Autopay.parent,
                Autopay.active_since,
            ],
            rows,
        )
        return [(row[0], row[10]) for row in bindings]

    def open_orders(self, count, amount=70000):
        """Orders no callback finished, made in the last two days, due for a check."""
        rows = []
        for n in range(count):
            created = self.now - timedelta(seconds=600 + self.rng.randrange(2 * 86400))
            rows.append(
                (
                    f"OPEN{n:08d}",
                    self.rng.choice(self.contract_ids),
                    self.instance.id,
                    self.configuration.id,
                    "payment",
                    amount,
                    "new",
                    None,
                    None,
                    None,
                    created,
                    created,
                    self.now - timedelta(seconds=1),
                )
            )
        self.insert("open orders", Transaction, TX_FIELDS, rows)
        return [(row[0], row[10]) for row in rows]


def _copy_text(value):
    """A value in COPY's text format (our values hold no tabs or backslashes)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def sandbox_orders(path, orders, kind, recurrent_start, amount):
    """Put paid orders straight into the sandbox's store: (order_id, created UTC)."""
    connection = sqlite3.connect(path, timeout=30)
    rows = [
        (
            SHOP["shop_id"],
            order_id,
            kind,
            amount,
            amount,
            "paid",
            "AS000",
            f"X{order_id}",
            "654321",
            "400000******2487",
            "12/2035",
            recurrent_start,
            *[created.replace(tzinfo=UTC).timestamp()] * 3,
        )
        for order_id, created in orders
    ]
    with connection:
        connection.executemany(
            "INSERT INTO orders (shop_id, order_id, kind, amount, balance, status,"
            " response_code, bill_number, approval_code, card_masked, card_expiry,"
            " is_recurrent_start, created_at, authorized_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    connection.close()
