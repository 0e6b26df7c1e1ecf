"""The console's work list: flagged, refunds in flight, overdue; counts in the nav."""

import re
from datetime import timedelta

import pytest

from cabinet import billing, payments
from cabinet.models import (
    AuditEntry,
    BillingDelivery,
    Receipt,
    Refund,
    Transaction,
    utcnow,
)
from tests.helpers import OPERATOR, console_login, new_payment


def count(page, name):
    """Read one count of the attention page."""
    return int(re.search(rf'id="count-{name}">(\d+)<', page).group(1))


def nav_count(page, link):
    """Read a nav link's count badge (0 when it shows none)."""
    badge = rf'id="nav-{link}">[^<]*(?:<span class="count"[^>]*>(\d+))?'
    found = re.search(badge, page)
    return int(found.group(1) or 0)


@pytest.fixture
def troubles(staff):
    """One of each kind of work, and a healthy order beside them."""
    contract = staff["contract"]
    flagged = new_payment(contract, 10000)
    payments.flag_for_review(flagged, "callback", "still open after 7 days")
    paid = new_payment(contract, 20000)
    payments.apply_status(paid.order_id, "paid", source="callback")
    refund = Refund.create(transaction=paid, amount=5000)
    # Past the form lifetime (300 s by default) and the 1 h margin: a day old.
    overdue = new_payment(staff["other"], 30000)
    Transaction.update(created_at=utcnow() - timedelta(days=1)).where(
        Transaction.id == overdue.id
    ).execute()
    fresh = new_payment(staff["other"], 40000)
    Receipt.create(
        transaction=paid,
        kind="sale",
        key=f"sale:{paid.id}",
        body="",
        total=20000,
        contact="ivanov@example.com",
        state="failed",
    )
    connector = billing.add_connector(
        staff["instance"], "hook", "webhook", {"url": "http://billing.test/hook"}
    )
    BillingDelivery.create(
        connector=connector,
        transaction=paid,
        kind="credit",
        key=f"credit:{paid.id}",
        amount=20000,
        account=contract.number,
        state="attention",
    )
    return {
        "flagged": flagged,
        "refund": refund,
        "paid": paid,
        "overdue": overdue,
        "fresh": fresh,
    }


def test_the_attention_page_lists_each_kind_of_work(client, troubles):
    console_login(client, OPERATOR)
    page = client.get("/console/attention").get_data(as_text=True)
    review = page.split('id="review"')[1].split('id="refunds"')[0]
    assert troubles["flagged"].order_id in review
    assert "висит открытым 7 дней" in review  # the stored reason, in Russian
    refunds = page.split('id="refunds"')[1].split('id="overdue"')[0]
    assert troubles["paid"].order_id in refunds and "50,00" in refunds
    overdue = page.split('id="overdue"')[1]
    assert troubles["overdue"].order_id in overdue
    assert troubles["fresh"].order_id not in overdue
    assert troubles["flagged"].order_id not in overdue  # a minute old
    assert {
        name: count(page, name)
        for name in ("review", "refunds", "overdue", "receipts", "billing")
    } == {"review": 1, "refunds": 1, "overdue": 1, "receipts": 1, "billing": 1}
    assert 'href="/console/receipts"' in page
    assert 'href="/console/billing/attention"' in page


def test_the_nav_counts_the_work_on_every_console_page(client, troubles):
    console_login(client, OPERATOR)
    page = client.get("/console/contracts").get_data(as_text=True)
    assert nav_count(page, "attention") == 3
    assert nav_count(page, "receipts") == 1
    assert nav_count(page, "billing") == 1
    Refund.update(status="done").where(Refund.id == troubles["refund"].id).execute()
    Transaction.update(status="expired").where(
        Transaction.id == troubles["overdue"].id
    ).execute()
    page = client.get("/console/contracts").get_data(as_text=True)
    assert nav_count(page, "attention") == 1


def test_no_work_shows_no_badge(client, staff):
    console_login(client, OPERATOR)
    page = client.get("/console/attention").get_data(as_text=True)
    assert nav_count(page, "attention") == 0
    assert page.count("Нет.") == 3


def test_a_reviewed_order_leaves_the_list_and_keeps_its_history(client, troubles):
    console_login(client, OPERATOR)
    flagged = troubles["flagged"]
    answer = client.post(
        f"/console/transactions/{flagged.order_id}/reviewed", data={"back": "attention"}
    )
    assert answer.status_code == 302 and "/console/attention" in answer.location
    page = client.get("/console/attention").get_data(as_text=True)
    assert count(page, "review") == 0 and nav_count(page, "attention") == 2
    assert flagged.order_id not in page.split('id="review"')[1].split('id="refunds"')[0]
    history = client.get(f"/console/transactions/{flagged.order_id}")
    text = history.get_data(as_text=True)
    assert "проверено оператором" in text and "висит открытым 7 дней" in text
    again = client.post(f"/console/transactions/{flagged.order_id}/reviewed")
    assert again.status_code == 302
    (entry,) = AuditEntry.select().where(AuditEntry.action == "transaction.reviewed")
    assert (entry.login, entry.object_id) == ("oper", flagged.order_id)


def test_billing_deliveries_read_in_words(client, troubles):
    console_login(client, OPERATOR)
    page = client.get("/console/billing/attention").get_data(as_text=True)
    row = page.split('id="attention"')[1]
    assert "<td>зачисление</td>" in row and "<td>credit</td>" not in row
    shown = client.get(f"/console/transactions/{troubles['paid'].order_id}")
    assert "нужен человек" in shown.get_data(as_text=True)
