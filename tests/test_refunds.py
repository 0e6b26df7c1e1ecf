"""Refunds through Uniteller's /unblock/, against the live sandbox."""

import json
import time

import pytest
import requests

from cabinet import accounts, acquirer, refunds
from cabinet.clock import utcnow
from cabinet.models import AuditEntry, Contract, LedgerEntry, Refund, Transaction
from cabinet.uniteller import client as uniteller_client
from cabinet.uniteller.client import UnitellerClient
from tests.helpers import DECLINE_CARD, in_app, pay_by_card

ADMIN = ("admin", "admin-password")


@pytest.fixture
def paid_500(world):
    """A 500 ₽ card payment, paid and credited, callbacks all delivered."""
    order_id, _, _ = pay_by_card(world, "500")
    world.settle()
    with in_app(world):
        accounts.add_operator(*ADMIN, admin=True)
        assert Transaction.by_order_id(order_id).status == "paid"
    return order_id


class Look:
    """Read the state of an order and its contract fresh from the database."""

    def __init__(self, world, order_id):
        self.world, self.order_id = world, order_id

    def __call__(self):
        with in_app(self.world):
            transaction = Transaction.by_order_id(self.order_id)
            kinds = sorted(
                e.kind
                for e in LedgerEntry.select().where(
                    LedgerEntry.transaction == transaction
                )
            )
            return (
                transaction.status,
                Contract.get_by_id(transaction.contract_id).balance,
                kinds,
            )


def assert_taken_back_once(state, refunds_made):
    """Canceled, balance 0, one entry per refund: whichever came first took it back.

    Uniteller's `canceled` callback may overtake its answer to the last refund:
    then the callback's reversal takes back what is left, and the refund nothing.
    """
    status, balance, kinds = state
    assert (status, balance) == ("canceled", 0)
    assert kinds.count("credit") == 1 and len(kinds) == 1 + refunds_made


def refund(world, order_id, amount=None):
    """Refund through the service, as the admin."""
    from cabinet.models import Operator

    with in_app(world):
        return refunds.start_refund(
            Transaction.by_order_id(order_id),
            amount,
            Operator.get(Operator.login == "admin"),
        )


def test_full_refund_cancels_and_the_later_callback_changes_nothing(world, paid_500):
    look = Look(world, paid_500)
    made = refund(world, paid_500)
    assert made.status == "done" and made.amount == 50000
    assert look()[:2] == ("canceled", 0)
    world.settle()  # Uniteller's own `canceled` callback arrives
    assert_taken_back_once(look(), 1)


def test_partial_refunds_twice_then_the_rest(world, paid_500):
    look = Look(world, paid_500)
    assert refund(world, paid_500, 10000).status == "done"
    assert refund(world, paid_500, 15050).status == "done"
    assert look() == ("paid", 24950, ["credit", "refund", "refund"])
    last = refund(world, paid_500)
    assert (last.status, last.amount) == ("done", 24950)
    world.settle()
    assert_taken_back_once(look(), 3)


def test_the_final_refund_after_a_partial_one_names_its_amount(
    world, paid_500, monkeypatch
):
    """Subtotal_P goes with every refund, the last one too (v1.43 defines it)."""
    asked = []
    unblock = UnitellerClient.unblock

    def recorded(self, bill_number, amount_kopecks=None):
        asked.append(amount_kopecks)
        return unblock(self, bill_number, amount_kopecks)

    monkeypatch.setattr(UnitellerClient, "unblock", recorded)
    refund(world, paid_500, 10000)
    refund(world, paid_500)
    assert asked == [10000, 40000]


def test_over_refund_and_uncredited_orders_are_refused(world, paid_500):
    refund(world, paid_500, 40000)
    with pytest.raises(refunds.RefundRefused) as refused:
        refund(world, paid_500, 10001)
    assert refused.value.message == "too_much"
    assert refused.value.details["left"] == 10000
    with pytest.raises(refunds.RefundRefused) as refused:
        refund(world, paid_500, 0)
    assert refused.value.message == "not_positive"
    declined, _, _ = pay_by_card(world, "500", DECLINE_CARD)
    with pytest.raises(refunds.RefundRefused) as refused:
        refund(world, declined)
    assert refused.value.message == "not_credited"
    with in_app(world):
        assert Refund.select().count() == 1


def test_a_canceled_callback_after_a_partial_refund_reverses_only_the_rest(
    world, paid_500
):
    """Someone refunds the rest in Uniteller's cabinet: its callback takes back 300."""
    look = Look(world, paid_500)
    refund(world, paid_500, 20000)
    with in_app(world):
        transaction = Transaction.by_order_id(paid_500)
        acquirer.client_for(transaction.configuration).unblock(transaction.bill_number)
    world.settle()
    assert look() == ("canceled", 0, ["credit", "refund", "reversal"])
    with in_app(world):
        reversal = LedgerEntry.get(LedgerEntry.kind == "reversal")
        assert reversal.amount == -30000


def test_already_canceled_at_uniteller_rechecks_the_status(world, paid_500):
    look = Look(world, paid_500)
    world.faults(drop_callbacks=True)  # we never hear of that cancel
    with in_app(world):
        transaction = Transaction.by_order_id(paid_500)
        acquirer.client_for(transaction.configuration).unblock(transaction.bill_number)
    made = refund(world, paid_500)
    assert (made.status, made.error_code) == ("failed", "16")
    assert look() == ("canceled", 0, ["credit", "reversal"])


def test_a_timed_out_refund_stays_pending_until_a_recheck(world, paid_500, monkeypatch):
    look = Look(world, paid_500)
    client_for = acquirer.client_for

    def impatient(configuration):
        """A client that gives up on /unblock/ (the bill number check waits)."""
        client = client_for(configuration)
        client.timeouts["/unblock/"] = 0.3
        return client

    monkeypatch.setattr(acquirer, "client_for", impatient)
    world.faults(latency_ms=1000)  # Uniteller refunds, but after we gave up
    made = refund(world, paid_500, 20000)
    assert made.status == "pending" and "re-check" in made.note
    assert look() == ("paid", 50000, ["credit"])
    with pytest.raises(refunds.RefundRefused):
        refund(world, paid_500, 100)  # one refund in flight at a time
    world.faults(latency_ms=0)
    monkeypatch.setattr(acquirer, "client_for", client_for)
    wait_for_sandbox_balance(world, paid_500, 30000)
    client = world.app.test_client()
    client.post("/console/login", data={"login": ADMIN[0], "password": ADMIN[1]})
    client.post(f"/console/transactions/{paid_500}/check")
    assert look() == ("paid", 30000, ["credit", "refund"])
    with in_app(world):
        assert Refund.get().status == "done"


def wait_for_sandbox_balance(world, order_id, kopecks, timeout=10):
    """Wait until the sandbox has finished a request we stopped waiting for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        orders = requests.get(
            f"{world.sandbox_url}/_sandbox/orders",
            params={"order_id": order_id},
            timeout=5,
        ).json()
        if orders and orders[0]["balance"] == kopecks:
            return
        time.sleep(0.05)
    raise AssertionError("the sandbox never made the refund")


def test_a_refund_the_answer_declines_is_not_booked(world, paid_500, monkeypatch):
    """v1.43 §8.5.4 reads the answer's status: a declined one is no refund."""
    post = UnitellerClient._post

    def declined(self, path, data):
        if path != "/unblock/":
            return post(self, path, data)
        header = "OrderNumber;Response_Code;Message;Total;Status;BillNumber"
        row = f"{paid_500};AS100;Отказ;500.00;Paid;{data['Billnumber']}"
        return f"{header}\r\n{row}\r\n"

    monkeypatch.setattr(UnitellerClient, "_post", declined)
    made = refund(world, paid_500, 20000)
    assert (made.status, made.error_code) == ("failed", "AS100")
    assert Look(world, paid_500)() == ("paid", 50000, ["credit"])


def test_the_refund_check_settles_a_refund_whose_answer_was_lost(
    world, paid_500, monkeypatch
):
    world.faults(latency_ms=1000)  # Uniteller refunds after we gave up waiting
    monkeypatch.setitem(uniteller_client.READ_TIMEOUTS, "/unblock/", 0.3)
    assert refund(world, paid_500, 20000).status == "pending"
    world.faults(latency_ms=0)
    wait_for_sandbox_balance(world, paid_500, 30000)
    with in_app(world):
        assert refunds.recheck_pending().looked_at == 0  # its answer may yet come
        stats = refunds.recheck_pending(now=utcnow() + refunds.RECHECK_AFTER)
        assert (stats.looked_at, stats.changed, stats.errors) == (1, 1, 0)
        assert Refund.get().status == "done"
    assert Look(world, paid_500)() == ("paid", 30000, ["credit", "refund"])


def test_a_young_pending_refund_is_not_judged_failed(world, paid_500):
    """Uniteller may still be working on it: only a later re-check may fail it."""
    with in_app(world):
        transaction = Transaction.by_order_id(paid_500)
        pending = Refund.create(transaction=transaction, amount=10000)
        assert refunds.recheck(transaction)["Status"] == "Paid"
        assert Refund.get_by_id(pending.id).status == "pending"
        Refund.update(created_at=pending.created_at - refunds.SETTLE_AFTER).execute()
        refunds.recheck(transaction)
        assert Refund.get_by_id(pending.id).status == "failed"


def test_refund_from_the_console_is_audited(world, paid_500):
    client = world.app.test_client()
    client.post("/console/login", data={"login": ADMIN[0], "password": ADMIN[1]})
    page = client.get(f"/console/transactions/{paid_500}").get_data(as_text=True)
    assert 'id="refund-form"' in page
    too_much = client.post(
        f"/console/transactions/{paid_500}/refund", data={"amount": "500,01"}
    )
    assert too_much.status_code == 409
    assert "можно вернуть не больше 500,00" in too_much.get_data(as_text=True)
    bad = client.post(f"/console/transactions/{paid_500}/refund", data={"amount": "x"})
    assert bad.status_code == 400
    done = client.post(
        f"/console/transactions/{paid_500}/refund",
        data={"amount": "100"},
        follow_redirects=True,
    )
    assert "Возврат 100,00 ₽ выполнен" in done.get_data(as_text=True)
    with in_app(world):
        entry = AuditEntry.get(AuditEntry.action == "transaction.refund")
        assert entry.before == {"status": "paid", "refundable": 50000}
        assert entry.after["refund_status"] == "done" and entry.after["amount"] == 10000
        assert "password" not in json.dumps(entry.after)


def test_a_refund_that_stays_pending_goes_to_the_back_of_the_re_checks(
    world, monkeypatch
):
    """One the NSPK keeps pending for long never starves the others' re-checks."""
    orders = [pay_by_card(world, amount)[0] for amount in ("100", "200")]
    world.settle()
    monkeypatch.setattr(refunds, "RECHECK_BATCH", 1)
    with in_app(world):
        made = []
        for order_id in orders:
            transaction = Transaction.by_order_id(order_id)
            made.append(
                Refund.create(
                    transaction=transaction,
                    amount=transaction.amount,
                    status="pending",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )

        later = utcnow() + refunds.RECHECK_AFTER

        def looked_at_last():
            rows = Refund.select().order_by(Refund.updated_at.desc(), Refund.id.desc())
            return rows.first().id

        refunds.recheck_pending(now=later)  # Uniteller has no refund row yet
        assert looked_at_last() == made[0].id
        refunds.recheck_pending(now=later)
        assert looked_at_last() == made[1].id  # the other one, not the first again
        assert {r.status for r in Refund.select()} == {"pending"}
