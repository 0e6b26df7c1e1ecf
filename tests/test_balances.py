"""The balance shown: the billing's as of its moment plus what moved here since."""

from datetime import timedelta

from cabinet import contract_sync, payments
from cabinet.balances import balance_of
from cabinet.clock import utcnow
from cabinet.models import Contract, LedgerEntry
from cabinet.money import format_wire
from tests.helpers import login, new_payment


def credit(contract, amount):
    transaction = new_payment(contract, amount)
    payments.apply_status(
        transaction.order_id,
        "Paid",
        source="status",
        fields={"BillNumber": "900000000001", "Total": format_wire(amount)},
        instance=transaction.instance,
    )


def test_without_a_billing_balance_the_cabinet_s_own_sum_is_shown(demo):
    credit(demo["contract"], 30000)
    shown = balance_of(Contract.by_number("1001"))
    assert (shown.amount, shown.source) == (30000, "cabinet")


def test_the_billing_s_balance_counts_only_what_moved_here_after_it(demo):
    credit(demo["contract"], 30000)
    # That credit was two hours ago: the billing's balance of an hour ago has it.
    LedgerEntry.update(created_at=utcnow() - timedelta(hours=2)).execute()
    an_hour_ago = (utcnow() - timedelta(hours=1)).isoformat()
    contract_sync.upsert(
        "1001", {"billing_balance": "-50.00", "billing_balance_at": an_hour_ago}, "api"
    )
    assert balance_of(Contract.by_number("1001")).amount == -5000
    credit(demo["contract"], 20000)  # made here after the billing's moment
    shown = balance_of(Contract.by_number("1001"))
    assert (shown.amount, shown.source, shown.since) == (15000, "billing", 20000)


def test_the_cabinet_shows_the_billing_s_balance_with_its_moment(app, demo, client):
    contract_sync.upsert(
        "1001",
        {"billing_balance": "-120.50", "billing_balance_at": "2026-12-01T07:00:00Z"},
        "api",
    )
    login(client)
    page = client.get("/").get_data(as_text=True)
    assert "-120,50 ₽" in page
    assert "01.12.2026 10:00" in page  # in the ISP's timezone (Moscow)
    assert "Баланс по данным биллинга" in page
