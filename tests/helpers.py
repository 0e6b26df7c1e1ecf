"""Helpers shared by tests: signed callbacks, quick transactions."""

from contextlib import contextmanager

from cabinet import payments
from cabinet.db import db
from cabinet.models import Contract, LedgerEntry, Transaction, TransactionEvent
from cabinet.uniteller.signatures import callback_signature

CALLBACK_FIELDS = ["BillNumber", "ApprovalCode", "Total"]


def signed_callback(
    order_id, status, password, total=None, bill="123456789012", approval="AB1234"
):
    """Build callback fields signed as Uniteller signs them (default CallbackFields)."""
    fields = {
        "Order_ID": order_id,
        "Status": status,
        "BillNumber": bill,
        "ApprovalCode": approval,
        "Total": total or "",
    }
    fields["Signature"] = callback_signature(
        password, order_id, status, [fields[n] for n in CALLBACK_FIELDS]
    )
    return fields


def new_payment(contract, amount=50000):
    """Create a `new` payment transaction for a contract."""
    transaction, _ = payments.start_payment(
        contract, amount, "http://cabinet.test/ok", "http://cabinet.test/no"
    )
    return transaction


def balance(contract):
    """Read a contract's balance fresh from the database."""
    return Contract.get_by_id(contract.id).balance


def status(transaction):
    """Read a transaction's status fresh from the database."""
    return Transaction.get_by_id(transaction.id).status


def credits(transaction):
    """Count the credit entries of a transaction."""
    return (
        LedgerEntry.select()
        .where(LedgerEntry.transaction == transaction, LedgerEntry.kind == "credit")
        .count()
    )


def events(transaction, kind=None):
    """List the events of a transaction (optionally one kind)."""
    query = TransactionEvent.select().where(TransactionEvent.transaction == transaction)
    if kind:
        query = query.where(TransactionEvent.kind == kind)
    return list(query.order_by(TransactionEvent.id))


SUCCESS_CARD = "4000000000002487"
DECLINE_CARD = "4000000000002479"


def _form(page, form_id="pay-form"):
    """Read the action and hidden fields of a form on a page."""
    import html
    import re

    page = page[page.index(f'id="{form_id}"') - 6 :]
    page = page[: page.index("</form>")]
    action = html.unescape(re.search(r'<form[^>]*action="([^"]+)"', page).group(1))
    fields = {
        html.unescape(n): html.unescape(v)
        for n, v in re.findall(
            r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page
        )
    }
    return action, fields


def pay_by_card(world, amount="500", card=SUCCESS_CARD, password="demo-pass"):
    """Go the subscriber's way: log in, /pay, the sandbox's card form, back to us."""
    import requests

    session = requests.Session()
    session.post(
        f"{world.url}/login",
        data={"number": world.contract_number, "password": password},
    )
    action, fields = _form(
        session.post(f"{world.url}/pay", data={"amount": amount}).text
    )
    location = _card(session, world, action, fields, card)
    returned = session.get(location)
    return fields["Order_IDP"], location, returned


def _card(session, world, action, fields, card):
    """Post a signed form to the sandbox and pay on its card page; return Location."""
    import re

    card_page = session.post(action, data=fields).text
    token = re.search(r'name="token" value="([^"]+)"', card_page).group(1)
    answer = session.post(
        f"{world.sandbox_url}/pay/card",
        allow_redirects=False,
        data={
            "token": token,
            "card_number": card,
            "exp_month": "12",
            "exp_year": "35",
            "cvc": "123",
            "holder": "IVAN IVANOV",
        },
    )
    return answer.headers["Location"]


def bind_autopay(
    world, mode, amount="300", card=SUCCESS_CARD, weekday=0, day=1, password="demo-pass"
):
    """Set up autopay in the cabinet as a subscriber does, paying once by card."""
    import requests

    session = requests.Session()
    session.post(
        f"{world.url}/login",
        data={"number": world.contract_number, "password": password},
    )
    page = session.post(
        f"{world.url}/autopay",
        data={
            "mode": mode,
            "weekday": str(weekday),
            "day_of_month": str(day),
            "amount": amount,
            "password": password,
            "consent": "y",
        },
    )
    assert page.status_code == 200, page.text
    action, fields = _form(page.text)
    assert fields.get("IsRecurrentStart") == "1"
    location = _card(session, world, action, fields, card)
    session.get(location)
    world.settle()
    return fields["Order_IDP"], session


@contextmanager
def in_app(world):
    """Enter a live world's app context with a database connection."""
    with world.app.app_context():
        db.connect(reuse_if_open=True)
        try:
            yield
        finally:
            if not db.is_closed():
                db.close()
