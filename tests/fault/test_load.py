"""Scenarios 12 and 13: SQLite under sustained callbacks, and kopeck-exact money."""

import logging
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests

from cabinet import accounts, configurations, payments
from cabinet import db as db_module
from cabinet.models import Contract, LedgerEntry
from cabinet.money import parse_amount
from tests.fault.tools import (
    callback,
    credits_per_order,
    open_orders,
    post_all,
    scaled,
    scaled_seconds,
    write_lock_held,
)
from tests.helpers import in_app

pytestmark = pytest.mark.fault

RATE = 200  # callbacks per second


@pytest.mark.sqlite_only
def test_12_sqlite_under_200_callbacks_a_second_and_page_reads(world, shop, figure):
    duration = scaled_seconds(120, 4)
    total = int(RATE * duration)
    orders = [o for o, _ in open_orders(world, max(1, total // 3))]
    # authorized, paid and a duplicate paid per order, the orders interleaved
    bodies = [
        callback(shop, o, status)
        for status in ("authorized", "paid", "paid")
        for o in orders
    ][:total]
    url = f"{world.url}/uniteller/isp/notify"
    start = time.monotonic() + 0.5
    reading = threading.Event()
    reading.set()
    page_answers = []

    def read_pages():
        session = requests.Session()
        session.post(
            f"{world.url}/login", data={"number": "1001", "password": "demo-pass"}
        )
        while reading.is_set():
            for path in ("/", "/payments", "/payments?page=2"):
                page_answers.append(
                    session.get(world.url + path, timeout=60).status_code
                )

    local = threading.local()

    def deliver(numbered):
        n, body = numbered
        if not hasattr(local, "session"):
            local.session = requests.Session()
        time.sleep(max(0.0, start + n / RATE - time.monotonic()))
        try:
            return local.session.post(url, data=body, timeout=60).status_code
        except requests.RequestException as exc:
            return type(exc).__name__

    readers = [threading.Thread(target=read_pages) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        with ThreadPoolExecutor(max_workers=64) as pool:
            answers = list(pool.map(deliver, enumerate(bodies)))
        elapsed = time.monotonic() - start
    finally:
        reading.clear()
        for reader in readers:
            reader.join(timeout=60)
    failures = figure(
        12, "non-200 answers to callbacks", len(answers) - answers.count(200), 0
    )
    figure(12, "callbacks per second reached", round(len(answers) / elapsed))
    figure(
        12,
        "page reads (non-200)",
        f"{len(page_answers)} ({len(page_answers) - page_answers.count(200)})",
    )
    assert failures == 0, {a for a in answers if a != 200}
    assert page_answers and set(page_answers) == {200}
    with in_app(world.app):
        assert Contract.by_number("1001").balance == 50000 * len(orders)


def _random_amount(rng):
    """A rouble amount as a person types it: edges, small, large, odd kopecks."""
    kind = rng.random()
    if kind < 0.05:
        return rng.choice(
            [
                "0.01",
                "0.1",
                "0.10",
                "0.29",
                "0.30",
                "1",
                "1.00",
                "999999.99",
                "100000",
                "0,07",
                "12,34",
            ]
        )
    if kind < 0.5:
        return f"{rng.randint(0, 999)}.{rng.randint(0, 99):02d}"
    if kind < 0.8:
        return f"{rng.randint(0, 999999)},{rng.randint(0, 9)}"
    return str(rng.randint(1, 999999))


def test_13_random_kopeck_amounts_credited_and_reversed_match_a_decimal_oracle(
    make_app, figure
):
    app = make_app()
    count = scaled(100_000, 200)
    rng = random.Random(13)
    wire = re.compile(r"\d+\.\d{2}")
    with in_app(app):
        instance = configurations.add_instance("isp", "Test ISP")
        configurations.add_configuration(
            instance,
            "main",
            [
                "shop_id=00000001",
                "login=1",
                "password=p",
                "gateway_url=http://gateway.test",
                "min_amount=0.01",
                "max_amount=1000000.00",
            ],
            activate=True,
        )
        contract = accounts.add_contract(
            "1001", "Иванов И. И.", "demo-pass", None, instance
        )
        oracle, bad_wire = Decimal("0"), 0
        for _ in range(count):
            typed = _random_amount(rng)
            exact = Decimal(typed.replace(",", "."))
            if exact <= 0:
                continue
            transaction, form = payments.start_payment(
                contract, parse_amount(typed), "http://ok", "http://no"
            )
            subtotal = form.fields["Subtotal_P"]
            bad_wire += not wire.fullmatch(subtotal) or Decimal(subtotal) != exact
            payments.apply_status(
                transaction.order_id,
                "paid",
                source="callback",
                fields={"Total": subtotal},
            )
            oracle += exact
            if rng.random() < 0.5:
                payments.apply_status(
                    transaction.order_id, "canceled", source="callback"
                )
                oracle -= exact
        ledger = sum(e.amount for e in LedgerEntry.select())
        balance = Contract.get_by_id(contract.id).balance
    drift = figure(
        13,
        "drift in kopecks",
        abs(int(oracle * 100) - ledger) + abs(balance - ledger),
        0,
    )
    figure(13, "Subtotal_P not %d.%02d or not exact", bad_wire, 0)
    figure(13, "amounts", count)
    assert drift == 0 and bad_wire == 0


@pytest.fixture
def impatient_sqlite(monkeypatch):
    """SQLite's own waits cut to 0.3 s: a lock of seconds then outlasts them, as a
    write longer than the real 10 s would (the unit's retry must cover it)."""
    monkeypatch.setattr(db_module, "SQLITE_BUSY_MS", 300)
    monkeypatch.setattr(db_module, "BEGIN_RETRY_SECONDS", 0.3)


def test_12_callbacks_wait_out_a_held_write_lock_and_never_answer_5xx(
    impatient_sqlite, make_world, database_url, shop, figure, caplog
):
    world = make_world()
    orders = [o for o, _ in open_orders(world, scaled(200, 20))]
    held = scaled_seconds(10, 3)
    url = f"{world.url}/uniteller/isp/notify"
    with write_lock_held(database_url) as release:
        threading.Timer(held, release).start()
        started = time.monotonic()
        answers = post_all(url, [callback(shop, o, "paid") for o in orders], 16)
        waited = time.monotonic() - started
    failures = figure(
        12,
        "non-200 answers while a write lock was held",
        len(answers) - answers.count(200),
        0,
    )
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    figure(12, "errors logged while a write lock was held", len(errors), 0)
    assert waited >= held * 0.9  # the callbacks did wait for the lock
    assert failures == 0, {a for a in answers if a != 200}
    assert errors == [], errors[:2]
    assert set(credits_per_order(world, orders).values()) == {1}


@pytest.mark.sqlite_only
def test_12_a_lock_longer_than_every_wait_answers_503_and_the_resent_callback_credits(
    impatient_sqlite, make_world, database_url, shop, figure, caplog, monkeypatch
):
    monkeypatch.setattr(db_module, "UNIT_RETRY_SECONDS", 0.5)
    world = make_world()
    orders = [o for o, _ in open_orders(world, scaled(100, 10))]
    url = f"{world.url}/uniteller/isp/notify"
    bodies = [callback(shop, o, "paid") for o in orders]
    with write_lock_held(database_url):
        with requests.Session() as session:
            deferred = [session.post(url, data=body, timeout=60) for body in bodies]
    # Uniteller sends a callback again until it is answered 200.
    resent = post_all(url, bodies, 16)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    figure(
        12,
        "non-503 answers, a lock past every wait",
        sum(a.status_code != 503 for a in deferred),
        0,
    )
    assert [a.status_code for a in deferred] == [503] * len(bodies)
    assert all(a.headers.get("Retry-After") for a in deferred)
    assert errors == [], errors[:2]
    assert resent == [200] * len(bodies)
    assert set(credits_per_order(world, orders).values()) == {1}
