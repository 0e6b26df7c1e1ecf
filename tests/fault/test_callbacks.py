"""Scenarios 1-6: callbacks duplicated, replayed, forged, orphaned, mis-totalled."""

import json
import re
from datetime import timedelta

import pytest
import requests

from cabinet import accounts, configurations, refunds
from cabinet.logs import JsonFormatter, TextFormatter
from cabinet.models import Operator, Transaction, TransactionEvent
from tests.fault.tools import (
    callback,
    changes_between,
    credits_per_order,
    money_state,
    open_orders,
    post_all,
    sandbox_orders,
    scaled,
)
from tests.helpers import in_app, pay_by_card, sign_callback

pytestmark = pytest.mark.fault

# A character that ends or rewrites a line where a log is read (C0, DEL, C1,
# Unicode separators, bidi overrides).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def notify_url(world):
    return f"{world.url}/uniteller/isp/notify"


def test_1_one_callback_fifty_times_concurrently_credits_once(
    world, shop, figure, log_lines
):
    orders = [order_id for order_id, _ in open_orders(world, scaled(200))]
    bodies = [
        callback(shop, order_id, "paid") for order_id in orders for _ in range(50)
    ]
    answers = post_all(notify_url(world), bodies, workers=50)
    credits = credits_per_order(world, orders)
    duplicates = figure(
        1, "duplicate credits", sum(n - 1 for n in credits.values() if n > 1), 0
    )
    locks = figure(
        1,
        "lock errors",
        sum("locked" in line or "deadlock" in line for line in log_lines),
        0,
    )
    figure(1, "non-200 answers", len(answers) - answers.count(200), 0)
    assert duplicates == 0 and locks == 0
    assert answers == [200] * len(bodies)
    assert set(credits.values()) == {1}
    assert money_state(world)["balances"]["1001"] == 50000 * len(orders)


def test_2_replays_change_nothing_and_a_late_paid_is_illegal(world, shop, figure):
    orders = [order_id for order_id, _ in open_orders(world, scaled(100, 2))]
    paid, canceled = orders[::2], orders[1::2]
    post_all(notify_url(world), [callback(shop, o, "paid") for o in orders])
    post_all(notify_url(world), [callback(shop, o, "canceled") for o in canceled])
    with in_app(world.app):
        # "A day later": nothing in a replay tells its age, so age the orders.
        for transaction in Transaction.select():
            Transaction.update(
                created_at=transaction.created_at - timedelta(days=1),
                updated_at=transaction.updated_at - timedelta(days=1),
            ).where(Transaction.id == transaction.id).execute()
    before = money_state(world)
    replays = [callback(shop, o, "paid") for o in orders]
    answers = post_all(notify_url(world), replays + replays)
    after = money_state(world)
    changes = figure(2, "state changes", changes_between(before, after), 0)
    with in_app(world.app):
        illegal = (
            TransactionEvent.select()
            .where(
                TransactionEvent.kind == "illegal",
                TransactionEvent.order_id.in_(canceled),
            )
            .count()
        )
    figure(2, "illegal transitions recorded", illegal, 2 * len(canceled))
    assert answers == [200] * len(answers)
    assert changes == 0 and after["balances"]["1001"] == 50000 * len(paid)
    assert illegal == 2 * len(canceled)


def _forgeries(shop, order_id):
    good = callback(shop, order_id, "paid")
    flipped = dict(
        good,
        Signature=good["Signature"][:-1]
        + ("0" if good["Signature"][-1] != "0" else "1"),
    )
    lower = dict(good, Signature=good["Signature"].lower())
    missing = {k: v for k, v in good.items() if k != "Signature"}
    empty = dict(good, Signature="")
    other_order = dict(good, Order_ID=order_id + "X")
    raised_total = dict(good, Total="5000.00")
    no_password = dict(good, Signature=sign_callback(good, ""))
    return [flipped, lower, missing, empty, other_order, raised_total, no_password]


def test_3_bad_signatures_are_refused_and_change_nothing(world, shop, figure):
    orders = [order_id for order_id, _ in open_orders(world, scaled(50, 2))]
    before = money_state(world)
    bodies = [body for order_id in orders for body in _forgeries(shop, order_id)]
    answers = post_all(notify_url(world), bodies)
    # The shop's password is gone from the configuration: nothing verifies, so
    # nothing is accepted (an empty password must not become a valid key).
    with in_app(world.app):
        instance = configurations.get_instance("isp")
        configuration = instance.active_configuration()
        configuration.params = {
            k: v for k, v in configuration.params.items() if k != "password"
        }
        configuration.save()
    unconfigured = post_all(
        notify_url(world),
        [
            *[callback(shop, o, "paid") for o in orders],
            *[callback({"password": ""}, o, "paid") for o in orders],
        ],
    )
    after = money_state(world)
    changes = figure(3, "state changes", changes_between(before, after), 0)
    figure(
        3, "answers other than 403", sum(a != 403 for a in answers + unconfigured), 0
    )
    assert changes == 0
    assert answers == [403] * len(bodies)
    assert unconfigured == [403] * len(unconfigured)


def test_3_an_unsigned_copy_of_a_signed_field_changes_nothing_nor_a_refund(
    world, shop, figure
):
    mine, other = pay_by_card(world, "500")[0], pay_by_card(world, "300")[0]
    world.settle()
    with in_app(world.app):
        accounts.add_operator("admin", "admin-password", admin=True)
        bills = {o: Transaction.by_order_id(o).bill_number for o in (mine, other)}
        before = Transaction.by_order_id(mine)
    genuine = callback(shop, mine, "paid")  # signed over BillNumber, Total, …
    genuine = {**genuine, "BillNumber": bills[mine]}
    genuine["Signature"] = sign_callback(genuine, shop["password"])
    url = notify_url(world)
    # Each added copy is unsigned; the signature still holds for the rest.
    repeated = [
        ({**genuine, "billnumber": bills[other]}, None),
        ({**genuine, "TOTAL": "5000.00"}, None),
        ({**genuine, "status": "canceled"}, None),
        (genuine, {"BillNumber": bills[other]}),  # the query string disagrees
        (genuine, {"billnumber": bills[other]}),
    ]
    answers = [
        requests.post(url, data=body, params=query, timeout=30).status_code
        for body, query in repeated
    ]
    # Uniteller's own repeats in the query string are the same values: one field.
    same = requests.post(url, data=genuine, params=genuine, timeout=30).status_code
    unsigned = {**genuine, "Response_Code": "FORGED", "Message": "forged"}
    unsigned_answer = requests.post(url, data=unsigned, timeout=30).status_code
    with in_app(world.app):
        after = Transaction.by_order_id(mine)
        kept = [e.fields or {} for e in after.events]
        # A bill number left on an order by any report is checked with
        # /results/ before /unblock/ is asked to refund it.
        Transaction.update(bill_number=bills[other]).where(
            Transaction.id == after.id
        ).execute()
        refund = refunds.start_refund(
            Transaction.by_order_id(mine), 10000, Operator.get(login="admin")
        )
    balances = {o["order_id"]: o["balance"] for o in sandbox_orders(world)}
    changed = [
        name
        for name in (
            "status",
            "bill_number",
            "response_code",
            "message",
            "needs_review",
        )
        if getattr(after, name) != getattr(before, name)
    ]
    accepted = figure(
        3, "callbacks with a repeated field accepted", sum(a != 400 for a in answers), 0
    )
    figure(3, "unsigned values taken by the transaction", len(changed), 0)
    wrong_refunds = figure(
        3,
        "refunds of another order's bill number",
        (balances[other] != 30000) + (refund.status != "failed"),
        0,
    )
    assert accepted == 0 and answers == [400] * len(repeated)
    assert same == 200 and unsigned_answer == 200
    assert changed == [] and any(f.get("Message") == "forged" for f in kept)
    assert wrong_refunds == 0 and balances[mine] == 50000


# A forged line a CR would start in a text log, and other ways out of a line.
FORGED_LINE = (
    "\r2026-01-01 00:00:00,000 INFO cabinet.payments: credited order=P1001-x"
    " contract=1001 amount=99999999"
)
LINE_BREAKERS = "\r\n\x0b\x0c\x1b[2K\x1c\x85\u2028\u2029\u202e\x7f"


def test_3_control_characters_of_a_refused_callback_stay_inside_its_log_line(
    world, shop, figure, caplog
):
    order_id = open_orders(world, 1)[0][0]
    forged = dict(
        callback(shop, order_id, "paid"),
        Order_ID=order_id + LINE_BREAKERS + FORGED_LINE,
        Signature="0" * 32,
    )
    answers = post_all(notify_url(world), [forged, {**forged, "Status": "\rpaid"}])
    refused = [r for r in caplog.records if "callback refused" in r.getMessage()]
    lines = [
        formatter.format(record)
        for record in refused
        for formatter in (TextFormatter(), JsonFormatter())
    ]
    breaking = [
        line for line in lines if len(line.splitlines()) != 1 or CONTROL.search(line)
    ]
    figure(3, "log lines a refused callback could break", len(breaking), 0)
    assert answers == [403, 403] and len(refused) == 2
    assert breaking == [], breaking[:2]
    assert all(json.loads(line) for line in lines[1::2])


def test_4_unknown_orders_with_valid_signatures_are_kept_as_orphans(
    world, shop, figure
):
    sent = [f"NOT-OURS-{n}" for n in range(scaled(100, 2))]
    before = money_state(world)
    answers = post_all(notify_url(world), [callback(shop, o, "paid") for o in sent])
    with in_app(world.app):
        orphans = {
            e.order_id
            for e in TransactionEvent.select().where(TransactionEvent.kind == "orphan")
        }
    console = world.app.test_client()
    with in_app(world.app):
        accounts.add_operator("watcher", "watcher-password")
    console.post(
        "/console/login", data={"login": "watcher", "password": "watcher-password"}
    )
    page = console.get("/console/orphans").get_data(as_text=True)
    figure(
        4,
        "orphans recorded / sent",
        f"{len(orphans & set(sent))}/{len(sent)}",
        f"{len(sent)}/{len(sent)}",
    )
    assert answers == [200] * len(sent)
    assert orphans == set(sent)
    assert sent[0] in page  # visible to operators
    assert changes_between(before, money_state(world)) == 0


def test_5_a_total_other_than_the_orders_amount_credits_nothing(world, shop, figure):
    orders = [order_id for order_id, _ in open_orders(world, scaled(100, 7))]
    totals = ["500.01", "499.99", "5000.00", "50000", "0.00", "-500.00", "1e3"]
    bodies = [
        callback(shop, o, "paid", totals[n % len(totals)]) for n, o in enumerate(orders)
    ]
    before = money_state(world)
    answers = post_all(notify_url(world), bodies)
    after = money_state(world)
    with in_app(world.app):
        flagged = (
            Transaction.select()
            .where(
                Transaction.order_id.in_(orders),
                Transaction.needs_review == True,  # noqa: E712
            )
            .count()
        )
    wrong = figure(5, "wrong credits", after["entries"] - before["entries"], 0)
    figure(
        5,
        "flagged for review",
        f"{flagged}/{len(orders)}",
        f"{len(orders)}/{len(orders)}",
    )
    assert answers == [200] * len(orders)
    assert wrong == 0 and flagged == len(orders)


SEQUENCES = [
    (["paid", "authorized"], "paid", 1),
    (["authorized", "paid"], "paid", 1),
    (["Paid"], "paid", 1),
    (["PAID", "paid", "Authorized"], "paid", 1),
    (["authorized"], "authorized", 1),
    (["paid", "canceled"], "canceled", 0),
    (["paid", "cancelled"], "canceled", 0),
    (["authorized", "Cancelled", "paid"], "canceled", 0),
    (["canceled", "paid"], "canceled", 0),
    (["waiting", "paid"], "paid", 1),
]


def test_6_order_and_spelling_of_statuses_end_in_the_right_state(world, shop, figure):
    rounds = scaled(20, 1)
    cases = [
        (sequence, final, held)
        for sequence, final, held in SEQUENCES
        for _ in range(rounds)
    ]
    orders = [o for o, _ in open_orders(world, len(cases))]
    # Each order's statuses arrive in its own order; the orders run concurrently.
    answers = []
    for step in range(max(len(c[0]) for c in cases)):
        answers += post_all(
            notify_url(world),
            [
                callback(shop, o, c[0][step])
                for o, c in zip(orders, cases, strict=True)
                if step < len(c[0])
            ],
        )
    # A callback not answered 200 was not applied (Uniteller would send it again):
    # counted apart, so it is never mistaken for a status applied out of order.
    failed = figure(6, "non-200 answers", len(answers) - answers.count(200), 0)
    state = money_state(world)
    with in_app(world.app):
        held = {
            t.order_id: sum(e.amount for e in t.ledger)
            for t in Transaction.select().where(Transaction.order_id.in_(orders))
        }
    wrong = [
        (c[0], state["statuses"][o], held[o])
        for o, c in zip(orders, cases, strict=True)
        if state["statuses"][o] != c[1] or held[o] != c[2] * 50000
    ]
    figure(6, "wrong states", len(wrong), 0)
    assert failed == 0, {a for a in answers if a != 200}
    assert wrong == []
