"""GET /api/payments: credits, reversals and refunds in order; the cursor never
skips nor repeats an entry."""

import threading
import time

import pytest

from cabinet import payments
from cabinet.db import write_unit
from tests.helpers import api_headers, in_app, new_payment


@pytest.fixture
def feed(app, demo):
    """Read the feed through the API: feed(since=None, limit=None) -> answer."""
    client, headers = app.test_client(), api_headers(app, "payments")

    def read(since=None, limit=None, count=0):
        # On PostgreSQL an entry shows once every transaction older than its
        # own has ended, in the whole cluster (other tests' too): wait for
        # `count` items a little.
        query = {k: v for k, v in (("since", since), ("limit", limit)) if v}
        deadline = time.monotonic() + 10
        while True:
            answer = client.get("/api/payments", query_string=query, headers=headers)
            assert answer.status_code == 200, answer.json
            if len(answer.json["items"]) >= count or time.monotonic() > deadline:
                return answer.json
            time.sleep(0.05)

    return read


def paid(contract, amount, bill):
    """A payment credited as a callback would credit it."""
    transaction = new_payment(contract, amount)
    payments.apply_status(
        transaction.order_id, "paid", source="callback", fields={"BillNumber": bill}
    )
    return transaction


def test_the_feed_lists_credits_reversals_and_refunds_in_order(feed, demo):
    first = paid(demo["contract"], 50000, "B-1")
    second = paid(demo["other"], 30000, "B-2")
    payments.apply_status(second.order_id, "canceled", source="callback")
    with write_unit():
        assert payments.book_refund(first, 7, 12345) == 12345
    new_payment(demo["contract"], 1000)  # never paid: not in the feed

    whole = feed(count=4)
    rows = [
        (i["kind"], i["contract"], i["amount"], i["order_id"], i["bill_number"])
        for i in whole["items"]
    ]
    assert rows == [
        ("credit", "1001", "500.00", first.order_id, "B-1"),
        ("credit", "1002", "300.00", second.order_id, "B-2"),
        ("reversal", "1002", "-300.00", second.order_id, "B-2"),
        ("refund", "1001", "-123.45", first.order_id, "B-1"),
    ]
    assert {i["transaction_kind"] for i in whole["items"]} == {"payment"}
    assert all(i["created_at"].endswith("Z") for i in whole["items"])
    assert whole["next"] == whole["items"][-1]["cursor"]

    # Page by page, one at a time: the same entries, none twice.
    walked, since = [], None
    for _ in range(6):
        page = feed(since, limit=1)
        walked += [i["id"] for i in page["items"]]
        since = page["next"]
    assert walked == [i["id"] for i in whole["items"]]
    assert feed(since) == {"items": [], "next": since}  # nothing new: same cursor

    later = paid(demo["contract"], 20000, "B-3")
    assert [i["order_id"] for i in feed(since, count=1)["items"]] == [later.order_id]
    middle = whole["items"][1]["cursor"]  # an item's cursor resumes after it
    assert [i["id"] for i in feed(middle)["items"]][:2] == [
        whole["items"][2]["id"],
        whole["items"][3]["id"],
    ]


def test_scope_and_bad_parameters(app, demo, feed):
    client = app.test_client()
    assert client.get("/api/payments").status_code == 401
    answer = client.get("/api/payments", headers=api_headers(app, "contracts"))
    assert answer.status_code == 403 and "payments" in answer.json["error"]
    for query, field in (
        ({"since": "not-a-cursor"}, "since"),
        ({"since": "WyJ4IiwxXQ"}, "since"),  # ["x",1]: not a feed cursor
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
    ):
        answer = client.get(
            "/api/payments", query_string=query, headers=api_headers(app, "payments")
        )
        assert (answer.status_code, answer.json["field"]) == (400, field), query


def test_an_entry_with_a_lower_id_committing_late_is_not_skipped(
    app, demo, feed, database_url
):
    if not database_url.startswith("postgres"):
        pytest.skip("SQLite commits one writer at a time: id order is commit order")
    slow, fast = new_payment(demo["contract"], 40000), new_payment(demo["other"], 9000)
    before = feed(count=0)["next"]
    written, release, failed = threading.Event(), threading.Event(), []

    def credit_slowly():
        # The credit's ledger entry takes its id now, and commits only later.
        try:
            with in_app(app), write_unit():
                payments.apply_status(slow.order_id, "paid", source="callback")
                written.set()
                assert release.wait(20)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            failed.append(exc)
            written.set()

    writer = threading.Thread(target=credit_slowly)
    writer.start()
    try:
        assert written.wait(20) and not failed
        payments.apply_status(fast.order_id, "paid", source="callback")  # commits
        page = feed(before)
        # The committed entry (higher id) waits behind the open one (lower id):
        # a cursor past it would skip the slow credit once that commits.
        assert page == {"items": [], "next": before}
    finally:
        release.set()
        writer.join(20)
    assert not failed
    items = feed(before, count=2)["items"]
    assert [i["order_id"] for i in items] == [slow.order_id, fast.order_id]
    assert items[0]["id"] < items[1]["id"]
    assert feed(items[-1]["cursor"])["items"] == []
