"""Helpers shared by tests: signed callbacks, logins, quick transactions, dates.

Fixtures live in conftest.py; everything else tests share lives here (the fault
suite's own in tests/fault/tools.py). No test imports from another test module
or from a conftest.
"""

from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cabinet import payments
from cabinet.db import db
from cabinet.models import Contract, LedgerEntry, Transaction, TransactionEvent
from cabinet.uniteller.signatures import callback_signature

CALLBACK_FIELDS = ["BillNumber", "ApprovalCode", "Total"]
# The ISP's timezone in the test configuration (config.py's TIMEZONE default).
ISP_TIMEZONE = "Europe/Moscow"


def isp_today(app=None):
    """Today's date where the ISP is (TIMEZONE), not the machine's (UTC) date.

    Every period a person types (reconcile --from/--to, the history and monitor
    filters) and every autopay due date is a date in TIMEZONE: between 21:00
    and 24:00 UTC it is already tomorrow in Moscow.
    """
    zone = app.config["TIMEZONE"] if app is not None else ISP_TIMEZONE
    return datetime.now(ZoneInfo(zone)).date()


def moscow(day, hour=7):
    """The naive UTC moment of `hour`:00 Moscow time on a date (Moscow is UTC+3)."""
    return datetime(day.year, day.month, day.day, hour) - timedelta(hours=3)


def sign_callback(fields, password):
    """The Signature Uniteller puts on callback fields (the tests' one signer).

    Order_ID, Status, then the CallbackFields values (missing ones empty).
    """
    return callback_signature(
        password,
        fields.get("Order_ID", ""),
        fields.get("Status", ""),
        [fields.get(name, "") for name in CALLBACK_FIELDS],
    )


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
    fields["Signature"] = sign_callback(fields, password)
    return fields


# Every autopay mode a configuration can allow.
ALL_MODES = ("autopay_weekly=yes", "autopay_monthly=yes", "autopay_automatic=yes")
# Console staff of the `staff` fixture.
ADMIN = ("admin", "admin-password")
OPERATOR = ("oper", "oper-password")
# A second configuration as an admin types it into the console's form.
NEW_CONFIG = {
    "name": "reserve",
    "shop_id": "00000002",
    "login": "77",
    "password": "very-secret-reserve",
    "gateway_url": "http://gateway.test",
    "callback_fields": "BillNumber Total",
    "lifetime": "",
    "min_amount": "",
    "max_amount": "",
}


def login(client, number="1001", password="demo-pass"):
    """Log a subscriber in through the form."""
    return client.post("/login", data={"number": number, "password": password})


def console_login(client, who=ADMIN):
    """Log an operator in through the console's form."""
    return client.post("/console/login", data={"login": who[0], "password": who[1]})


def redis_url(connection):
    """The URL of a Redis connection's database (the run's claimed number)."""
    kwargs = connection.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


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
def in_app(app_or_world):
    """Enter an app context with an open connection (the tests' one way in).

    Takes an app or a live world (its app); yields the app. A connection it
    opened it closes; one already open (the `ctx` fixture's) it leaves open.
    """
    app = getattr(app_or_world, "app", app_or_world)
    with app.app_context():
        # Close only a connection opened here, not one an outer block holds.
        opened = db.connect(reuse_if_open=True)
        try:
            yield app
        finally:
            if opened and not db.is_closed():
                db.close()


# Where the browser tests put their screenshots.
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def shot(page, name):
    """Save a full-page screenshot of a browser page to test-artifacts/."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
