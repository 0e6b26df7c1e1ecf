"""The payment path end to end: our live app and the live sandbox, no mocks."""

from urllib.parse import urlsplit

import pytest
import requests

from cabinet.db import db
from cabinet.models import Contract, Transaction
from tests.helpers import DECLINE_CARD, SUCCESS_CARD, in_app, pay_by_card


def read(world, number="1001"):
    """Return (balance, {order: status}) of a contract, fresh."""
    with in_app(world):
        with db.connection_context():
            contract = Contract.by_number(number)
            statuses = {t.order_id: t.status for t in contract.transactions}
            return contract.balance, statuses


def test_success_card_credits_once_and_returns_to_ok(world):
    order_id, location, page = pay_by_card(world, "500", SUCCESS_CARD)
    assert "/pay/return/ok" in location and f"Order_ID={order_id}" in location
    assert page.status_code == 200
    world.settle()
    balance, statuses = read(world)
    assert balance == 50000 and statuses == {order_id: "paid"}


def test_declined_card_goes_to_no_and_changes_nothing(world):
    order_id, location, page = pay_by_card(world, "500", DECLINE_CARD)
    assert "/pay/return/no" in location
    world.settle()
    assert read(world) == (0, {order_id: "new"})  # no callback for a failure


@pytest.mark.parametrize(
    "amount, outcome",
    [
        ("375.00", "expired card"),
        ("1500.00", "insufficient funds"),
        ("2500.00", "declined"),
    ],
)
def test_amount_bands_decline(world, amount, outcome):
    _, location, _ = pay_by_card(world, amount, SUCCESS_CARD)
    assert "/pay/return/no" in location, outcome
    world.settle()
    assert read(world)[0] == 0


def test_delayed_success_credits_when_it_comes(make_world):
    world = make_world(SANDBOX_DELAYED_SUCCESS_SECONDS=1)
    order_id, location, _ = pay_by_card(world, "4000.00", SUCCESS_CARD)
    assert "/pay/return/ok" in location
    world.settle()
    assert read(world) == (400000, {order_id: "paid"})


def test_callbacks_retried_after_http_errors_credit_once(world):
    world.faults(callback_http_errors=3)
    order_id, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    assert read(world) == (50000, {order_id: "paid"})


def test_duplicate_callbacks_credit_once(world):
    world.faults(duplicate_callbacks=5)
    order_id, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    assert read(world) == (50000, {order_id: "paid"})


def test_paid_before_authorized_ends_paid_and_credits_once(world):
    world.faults(reorder_callbacks=True)
    order_id, _, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    assert read(world) == (50000, {order_id: "paid"})
    with in_app(world):
        transaction = Transaction.by_order_id(order_id)
        kinds = [e.kind for e in transaction.events]
    assert (
        kinds.count("state") == 2
    )  # created, new -> paid; the late authorized is a no-op


def test_an_e_mail_longer_than_uniteller_takes_stays_off_the_pay_form(world):
    """Uniteller refuses an Email over 64 characters (v1.43): the payer types one."""
    with in_app(world):
        Contract.update(email="a" * 60 + "@isp.test").where(
            Contract.number == "1001"
        ).execute()
    order_id, location, _ = pay_by_card(world, "500", SUCCESS_CARD)
    world.settle()
    assert "/pay/return/ok" in location
    assert read(world)[1][order_id] == "paid"


def test_the_failure_return_names_the_order_itself(world):
    """Uniteller promises Order_ID only on URL_RETURN_OK (v1.43): our URL names it."""
    order_id, location, _ = pay_by_card(world, "500", DECLINE_CARD)
    path = urlsplit(location).path
    assert path.endswith(f"/pay/return/no/{order_id}")
    session = requests.Session()
    session.post(f"{world.url}/login", data={"number": "1001", "password": "demo-pass"})
    page = session.get(f"{world.url}{path}")  # no Order_ID in the query
    assert page.status_code == 200 and order_id in page.text
