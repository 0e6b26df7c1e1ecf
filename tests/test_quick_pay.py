"""Paying without signing in: /quick-pay by contract number, through the sandbox."""

import re

import pytest

from cabinet import contract_sync
from cabinet.balances import balance_of
from cabinet.models import Contract, Transaction, TransactionEvent
from tests.helpers import (
    billing_deliveries,
    events,
    in_app,
    quick_pay_by_card,
)

REFUSED = "check the contract number; if it is right, contact your provider"


def quick_pay(client, number, amount="500", **extra):
    """Post the quick-pay form; return (status, page text)."""
    answer = client.post(
        "/quick-pay", data={"number": number, "amount": amount, **extra}
    )
    return answer.status_code, answer.get_data(as_text=True)


def errors_of(page):
    """The error lines a form page shows."""
    return re.findall(r'<p class="error"[^>]*>([^<]*)</p>', page)


@pytest.fixture
def english(app):
    """The interface in English (the refusal is compared as text)."""
    app.config["DEFAULT_LOCALE"] = "en"
    return app


def test_a_known_contract_pays_through_the_sandbox(world, run_jobs):
    order_id, returned = quick_pay_by_card(world, "1001", "500")
    world.settle()
    assert returned.status_code == 200 and 'id="payment-status"' in returned.text
    with in_app(world):
        transaction = Transaction.get(Transaction.order_id == order_id)
        assert transaction.status == "paid" and transaction.amount == 50000
        assert Contract.by_number("1001").balance == 50000
        (created,) = events(transaction, "state")[:1]
        assert created.source == "quick-pay"


def test_a_number_the_billing_confirms_becomes_a_contract_and_pays(
    osmp_world, run_jobs
):
    world = osmp_world
    # The billing's check names the balance, as BGBilling's <account_balance>.
    world.billing.books.set_faults({"balances": {"7700123": "-40.50"}})
    order_id, _ = quick_pay_by_card(world, "7700123", "300")
    world.settle()
    with in_app(world):
        contract = Contract.by_number("7700123")
        assert (contract.source, contract.instance.code) == ("billing", "isp")
        assert contract.billing_balance == -4050  # shown, plus the 300 paid since
        assert balance_of(contract).amount == -4050 + 30000
        assert contract.password_hash == ""  # it signs in only by a handoff
        transaction = Transaction.get(Transaction.order_id == order_id)
        assert transaction.contract_id == contract.id
        assert transaction.status == "paid"
    checks = [r for r in world.billing.books.state()["requests"] if r[1] == "check"]
    assert len(checks) == 1 and checks[0][3] == 0
    run_jobs(world.app)  # delivered like any other payment
    (paid,) = world.billing.paid()
    assert (paid["account"], paid["sum"]) == ("7700123", "300.00")
    assert billing_deliveries(world)[0].state == "done"


def test_a_number_the_billing_rejects_is_refused_and_not_made(osmp_world):
    world = osmp_world
    world.billing.books.set_faults({"refuse_accounts": ["7700999"]})
    client = world.app.test_client()
    world.app.config["DEFAULT_LOCALE"] = "en"
    status, page = quick_pay(client, "7700999")
    assert status == 400 and errors_of(page) == [REFUSED.capitalize() + "."]
    with in_app(world):
        assert Contract.by_number("7700999") is None
        assert Transaction.select().count() == 0


def test_unknown_blocked_and_malformed_numbers_get_one_answer(english, ctx, demo):
    contract_sync.block("1002")
    client = english.test_client()
    answers = {
        number: quick_pay(client, number)
        for number in ("9999", "1002", "../etc", "1" * 65)
    }
    for number, (status, page) in answers.items():
        assert status == 400, number
        assert errors_of(page) == [REFUSED.capitalize() + "."], number
        assert "Петров" not in page
    assert Transaction.select().count() == 0
    # Without an OSMP connector an unknown number is not looked up anywhere.
    assert Contract.by_number("9999") is None


def test_the_form_is_prefilled_and_reveals_nothing(english, demo):
    page = english.test_client().get("/quick-pay?account=1001&amount=500").text
    assert 'value="1001"' in page and 'value="500"' in page
    assert "Иванов" not in page and "balance" not in page.lower()


def test_a_valid_number_goes_straight_to_uniteller(english, ctx, demo):
    status, page = quick_pay(english.test_client(), "1001", "250")
    assert status == 200 and 'id="pay-form"' in page
    assert 'action="http://gateway.test/pay/"' in page
    assert "Иванов" not in page
    (transaction,) = Transaction.select()
    assert (
        transaction.amount == 25000 and transaction.contract_id == demo["contract"].id
    )
    assert "/quick-pay/return/" in page  # back to a page that needs no sign-in


def test_another_browser_cannot_read_a_quick_payment(english, ctx, demo):
    client = english.test_client()
    quick_pay(client, "1001")
    order_id = Transaction.get().order_id
    assert client.get(f"/quick-pay/status/{order_id}").status_code == 200
    stranger = english.test_client()
    assert stranger.get(f"/quick-pay/status/{order_id}").status_code == 404
    assert stranger.get(f"/quick-pay/return/ok/{order_id}").status_code == 404


def test_attempts_are_limited_per_contract_number(make_app, demo):
    app = make_app(QUICK_PAY_CONTRACT_LIMIT=2, QUICK_PAY_ADDRESS_LIMIT=100)
    client = app.test_client()
    assert quick_pay(client, "1001")[0] == 200
    assert quick_pay(client, "1001")[0] == 200
    answer = client.post("/quick-pay", data={"number": "1001", "amount": "500"})
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0
    # Every number counts, known or not: the limit tells nothing either.
    assert quick_pay(client, "9999")[0] == 400
    assert quick_pay(client, "9999")[0] == 400
    assert quick_pay(client, "9999")[0] == 429
    other = app.test_client()
    assert quick_pay(other, "1002")[0] == 200


def test_attempts_are_limited_per_address(make_app, demo):
    app = make_app(QUICK_PAY_ADDRESS_LIMIT=3, QUICK_PAY_CONTRACT_LIMIT=100)
    client = app.test_client()
    for number in ("9001", "9002", "9003"):
        assert quick_pay(client, number)[0] == 400
    assert quick_pay(client, "1001")[0] == 429  # even a good one, from here
    elsewhere = app.test_client()
    answer = elsewhere.post(
        "/quick-pay",
        data={"number": "1001", "amount": "500"},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert answer.status_code == 200


def test_a_form_without_csrf_changes_nothing(make_app, demo):
    app = make_app(WTF_CSRF_ENABLED=True)
    status, _ = quick_pay(app.test_client(), "1001")
    assert status == 400
    with in_app(app):
        assert Transaction.select().count() == 0
        assert TransactionEvent.select().count() == 0


def test_with_receipts_a_contract_without_contact_gives_one(make_world):
    from cabinet import accounts
    from cabinet.models import ModuleInstance

    world = make_world(fiscal=True)
    with in_app(world):
        instance = ModuleInstance.by_code("isp")
        accounts.add_contract("1003", "Сидоров С. С.", "x-pass", None, instance)
    client = world.app.test_client()
    assert 'name="contact"' in client.get("/quick-pay").text
    status, page = quick_pay(client, "1003")
    assert status == 400 and len(errors_of(page)) == 1 and 'name="contact"' in page
    quick_pay_by_card(world, "1003", "200", contact="payer@example.com")
    # A contract that has a contact keeps it: a stranger's typing changes nothing.
    quick_pay_by_card(world, "1001", "200", contact="someone@example.com")
    world.settle()
    with in_app(world):
        assert Contract.by_number("1003").email == "payer@example.com"
        assert Contract.by_number("1001").email == "ivanov@example.com"
        paid = Transaction.select().where(Transaction.status == "paid").count()
        assert paid == 2


def test_quick_pay_show_name_shows_a_masked_name_before_paying(make_app, demo):
    app = make_app(QUICK_PAY_SHOW_NAME=True, DEFAULT_LOCALE="en")
    client = app.test_client()
    status, page = quick_pay(client, "1001", "300")
    assert status == 200 and 'id="payee"' in page and 'id="pay-form"' not in page
    assert "Иванов И." in page and "Иванов И. И." not in page
    status, page = quick_pay(client, "1001", "300", confirmed="1001")
    assert status == 200 and 'id="pay-form"' in page
    # A confirmation of one number does not pass for another.
    status, page = quick_pay(client, "1002", "300", confirmed="1001")
    assert 'id="payee"' in page and "Петров П." in page and 'id="pay-form"' not in page
    status, page = quick_pay(client, "9999", "300", confirmed="9999")
    assert status == 400 and errors_of(page) == [REFUSED.capitalize() + "."]
    with in_app(app):
        assert Transaction.select().count() == 1


def test_without_quick_pay_show_name_no_name_is_shown(english, ctx, demo):
    status, page = quick_pay(english.test_client(), "1001", "300")
    assert 'id="payee"' not in page and "Иванов" not in page


def test_a_masked_name_keeps_the_surname_and_one_initial():
    from cabinet.quick_pay import masked_name

    assert masked_name("Иванов И. И.") == "Иванов И."
    assert masked_name("Петров Пётр Петрович") == "Петров П."
    assert masked_name("Сидоров") == "Сидоров"
    assert masked_name("") == ""
