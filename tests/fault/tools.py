"""What the fault scenarios share: their scale and secrets, the secrets watch,
orders in bulk, concurrent delivery, money counts."""

import os
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import requests
from peewee import fn

from cabinet import payments
from cabinet.models import Contract, LedgerEntry, Transaction
from cabinet.uniteller.sandbox.engine import Card
from tests.helpers import SUCCESS_CARD, in_app, signed_callback

# The one setting of the suite: 1 runs the counts and durations of issue 8;
# CI (Makefile) runs a small fraction of them.
FAULT_SCALE = float(os.environ.get("FAULT_SCALE", "1"))

SCENARIOS = {
    1: "one callback x50 concurrently, many orders",
    2: "replays: paid again later, paid after canceled",
    3: "bad signatures, password not configured",
    4: "valid signature, unknown order",
    5: "Total differs from the order",
    6: "paid before authorized, Paid/paid, canceled/cancelled",
    7: "callback and status task racing",
    8: "all callbacks dropped",
    9: "worker SIGKILLed around a recurrent charge",
    10: "Redis flushed mid-run",
    11: "gateway timeouts, 5xx, codes 15/28",
    12: "SQLite under callbacks plus page reads",
    13: "random kopeck amounts credited and reversed",
    14: "fuzzed forms, callbacks and API",
    15: "foreign order ids, console without staff",
    16: "state-changing forms without CSRF",
    17: "open redirects",
    18: "brute force, fixation, re-authentication",
    19: "secrets in logs and pages",
    20: "security headers and cookies",
    21: "billing deliveries: concurrent credits, killed worker",
    # Issue 22's findings, numbered 100 + the finding.
    102: "gateway address: bare Uniteller origins only",
    103: "unauthenticated work: limits, queues, order ids",
    109: "reconciliation: POST, a job, at most 31 days",
    110: "extreme dates and pages",
    111: "request bodies over MAX_CONTENT_LENGTH",
    113: "CSV export: formula cells quoted",
    114: "keys, caching, file modes, fingerprints, instances",
}

# Secrets of the suite's shop and app, distinctive so a leak cannot hide among
# ordinary numbers; scenario 19 looks for them everywhere.
SHOP = {
    "shop_id": "00000001",
    "login": "77310042",
    "password": "fault-suite-uniteller-password-7Qx",
}
SECRET_KEY = "fault-suite-session-secret-Hk29"
TEST_CARDS = (
    "4000000000002487",
    "4000000000002420",
    "4000000000002438",
    "5000000000002443",
    "5000000000002450",
    "2200060300746821",
    "4000000000002479",
    "4000000000002488",
    "4405050300000001",
)
SECRETS = {
    "Uniteller password": SHOP["password"],
    "API login": SHOP["login"],
    "session secret": SECRET_KEY,
    **{f"card {card[:4]}…{card[-4:]}": card for card in TEST_CARDS},
}


def scaled(full, minimum=1):
    """Scale a full-run count by FAULT_SCALE, never below `minimum`."""
    return max(minimum, round(full * FAULT_SCALE))


def scaled_seconds(full, minimum):
    """Scale a full-run duration by FAULT_SCALE, never below `minimum` seconds."""
    return max(minimum, full * FAULT_SCALE)


# --- the secrets watch (scenario 19) -------------------------------------------------


class SecretsWatch:
    """Scan every page the suite fetches and every log line for secrets."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pages = 0
        self.log_lines = 0
        self.hits = []
        self.foreign = set()  # the sandbox's base URLs: it plays Uniteller, not us
        self.pattern = re.compile("|".join(re.escape(s) for s in SECRETS.values()))
        self.names = {value: name for name, value in SECRETS.items()}

    def scan(self, where, text, sent=""):
        """Note every secret in `text`, with where it was seen.

        A secret the request itself carried (a fuzzer's input echoed in a
        login link) is the sender's own text, not a leak.
        """
        for match in self.pattern.finditer(text):
            if match.group() in sent:
                continue
            start = max(0, match.start() - 60)
            with self.lock:
                self.hits.append(
                    (self.names[match.group()], where, text[start : match.end() + 20])
                )

    def page(self, url, text, sent=""):
        """Scan one answer; `sent` is what its request carried."""
        if any(url.startswith(base) for base in self.foreign):
            return
        with self.lock:
            self.pages += 1
        self.scan(f"page {url}", text, sent)

    def log(self, source, text):
        with self.lock:
            self.log_lines += text.count("\n") + 1
        self.scan(f"log {source}", text)


WATCH = SecretsWatch()


def open_orders(world, count, amount=50000, number="1001"):
    """Create `count` new card payments of a contract; return [(order id, form)]."""
    with in_app(world.app):
        contract = Contract.by_number(number)
        made = []
        for _ in range(count):
            transaction, form = payments.start_payment(
                contract,
                amount,
                f"{world.url}/pay/return/ok",
                f"{world.url}/pay/return/no",
            )
            made.append((transaction.order_id, form))
        return made


def pay_at_sandbox(world, form, card=SUCCESS_CARD):
    """Pay a signed form at the sandbox as the card page would; return its order row."""
    sandbox = world.sandbox
    token = sandbox.open_session(dict(form.fields))
    return sandbox.pay_with_card(token, Card(card, 12, 2035, "IVAN IVANOV"))


def callback(shop, order_id, status, total="500.00"):
    """A callback signed with the shop's password, as Uniteller sends it."""
    return signed_callback(order_id, status, shop["password"], total)


def post_all(url, bodies, workers=50, cookies=None):
    """POST every body (form fields) concurrently; return the HTTP status codes.

    `cookies` (a logged-in session's, say) go with every request.
    """
    with requests.Session() as session:
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=workers)
        session.mount("http://", adapter)
        session.cookies.update(cookies or {})

        def post(body):
            try:
                return session.post(url, data=body, timeout=60).status_code
            except requests.RequestException as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(post, bodies))


@contextmanager
def write_lock_held(database_url):
    """Hold the database's write lock from a connection of our own; yield release().

    On SQLite the write lock itself (BEGIN IMMEDIATE), as another process's long
    write would; on PostgreSQL an exclusive lock on the tables a callback writes
    (reads go on, writes wait).
    """
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(
            database_url.split(":///", 1)[1],
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute("BEGIN IMMEDIATE")
    else:
        import psycopg2

        connection = psycopg2.connect(database_url)
        connection.cursor().execute('LOCK TABLE "transaction" IN EXCLUSIVE MODE')
    released = threading.Lock()

    def release():
        if released.acquire(blocking=False):
            connection.rollback()
            connection.close()

    try:
        yield release
    finally:
        release()


def credits_per_order(world, order_ids):
    """Count the credit entries of each order."""
    with in_app(world.app):
        rows = (
            LedgerEntry.select(Transaction.order_id, fn.COUNT(LedgerEntry.id))
            .join(Transaction)
            .where(
                LedgerEntry.kind == "credit", Transaction.order_id.in_(list(order_ids))
            )
            .group_by(Transaction.order_id)
            .tuples()
        )
        counts = dict(rows)
    return {order_id: counts.get(order_id, 0) for order_id in order_ids}


def money_state(world):
    """Every contract's balance, the ledger's sum and each transaction's status."""
    with in_app(world.app):
        balances = {c.number: c.balance for c in Contract.select()}
        ledger = LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount), 0)).scalar()
        statuses = dict(
            Transaction.select(Transaction.order_id, Transaction.status).tuples()
        )
        entries = LedgerEntry.select().count()
    return {
        "balances": balances,
        "ledger": ledger,
        "statuses": statuses,
        "entries": entries,
    }


def changes_between(before, after):
    """Count what differs between two money states (balances, entries, statuses)."""
    changed = sum(before["balances"].get(k) != v for k, v in after["balances"].items())
    changed += abs(after["entries"] - before["entries"])
    changed += sum(before["statuses"].get(k) != v for k, v in after["statuses"].items())
    return changed


def sandbox_orders(world):
    """The sandbox's order attempts (its own record of what was charged)."""
    return requests.get(f"{world.sandbox_url}/_sandbox/orders", timeout=30).json()


def age_charges(world, minutes):
    """Make every autopay charge `minutes` older: time passes without waiting for it."""
    from datetime import timedelta

    from cabinet.models import AutopayCharge

    with in_app(world.app):
        for charge in AutopayCharge.select():
            AutopayCharge.update(
                updated_at=charge.updated_at - timedelta(minutes=minutes)
            ).where(AutopayCharge.id == charge.id).execute()


def snapshot():
    """What a refused request must not change (call inside an app context)."""
    from cabinet.models import (
        ApiToken,
        Autopay,
        AutopayCharge,
        AutopayConsent,
        ModuleConfiguration,
        Operator,
    )

    return (
        Transaction.select().count(),
        LedgerEntry.select().count(),
        Autopay.select().count(),
        AutopayConsent.select().count(),
        AutopayCharge.select().count(),
        ApiToken.select().count(),
        Operator.select().count(),
        ModuleConfiguration.select().count(),
        sorted(Transaction.select(Transaction.status).tuples()),
        sorted(Autopay.select(Autopay.state).tuples()),
        sorted((c.number, c.balance, c.instance_id) for c in Contract.select()),
        sorted(
            (c.id, c.is_active, str(c.params)) for c in ModuleConfiguration.select()
        ),
    )


def expire_recurrent_slots(redis):
    """End every taken /recurrent/ slot's hold now; return the seconds each had left.

    Scenario 9 calls it between workers, when only a killed one can hold a
    slot: a dead holder's slot frees itself by expiry, and the test lets that
    time pass without waiting for it (as age_charges does for charges).
    """
    left = []
    for key in redis.scan_iter("cabinet:recurrent:*"):
        key = key.decode() if isinstance(key, bytes) else key
        if key.endswith(":wake"):
            continue  # the wake-up list, not a slot
        ttl_ms = redis.pttl(key)
        if redis.delete(key):
            left.append(ttl_ms / 1000)
    return left
