"""Helpers shared by tests: signed callbacks, logins, quick transactions, dates.

Fixtures live in conftest.py; everything else tests share lives here (the fault
suite's own in tests/fault/tools.py). No test imports from another test module
or from a conftest.
"""

import itertools
import re
import socket
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

from cabinet import payments
from cabinet.db import db
from cabinet.models import Contract, LedgerEntry, Transaction, TransactionEvent
from cabinet.money import format_wire
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


def next_weekday(weekday, after=None):
    """The first date after `after` (default: the ISP's today) on that weekday."""
    day = (after or isp_today()) + timedelta(days=1)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day


def daily_run(world, day, run_jobs=None):
    """The daily autopay run on `day` at 07:00 Moscow; its jobs run if run_jobs."""
    from cabinet import autopay

    with in_app(world):
        stats = autopay.run(now=moscow(day))
    if run_jobs:
        run_jobs(world.app)
        world.settle()
    return stats


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


# A fiscal profile as an ISP on the simplified system without VAT sets it.
FISCAL_PROFILE = (
    "fiscal=yes",
    "fiscal_gateway_url=http://gateway.test",
    "fiscal_taxmode=1",
    "fiscal_vat=-1",
    "fiscal_place=https://pay.isp.test",
)


# The tests' apps' SECRET_KEY: a process a test starts on their data needs the
# same one, for the secrets sealed at rest are keyed with it (cabinet/sealing.py).
TEST_SECRET_KEY = "test-secret-key"


def add_shop_instance(
    shop,
    gateway_url,
    name="Test ISP",
    contract_name="Иванов И. И.",
    email=None,
    params=(),
):
    """Instance `isp` with an active configuration of `shop` at `gateway_url` (and
    `params`, KEY=VALUE), and contract 1001 (password demo-pass, `email`); call
    inside the app."""
    from cabinet import accounts, configurations

    instance = configurations.add_instance("isp", name)
    configurations.add_configuration(
        instance,
        "main",
        [
            f"shop_id={shop['shop_id']}",
            f"login={shop['login']}",
            f"password={shop['password']}",
            f"gateway_url={gateway_url}",
            *params,
        ],
        activate=True,
    )
    accounts.add_contract("1001", contract_name, "demo-pass", email, instance)
    return instance


def fiscal_profile(gateway_url):
    """FISCAL_PROFILE with its receipts sent to `gateway_url` (a live sandbox)."""
    return (
        *(p for p in FISCAL_PROFILE if not p.startswith("fiscal_gateway_url=")),
        f"fiscal_gateway_url={gateway_url}",
    )


def fiscalized(receipt, fiscal_id, doc_type=0, link="https://check.test/r"):
    """A fiscalized receipt as Uniteller returns it (fiscal 02.1.18, Appendix 2)."""
    return {
        **receipt,
        "fiscal": {
            "id": fiscal_id,
            "type": doc_type,
            "register": {
                "fiscal_number": "1234",
                "shift_number": "7",
                "fiscal_date": "2026-12-02 10:00:00",
                "fiscal_attr": "3522707203",
                "fiscal_link": link,
            },
        },
    }


def fiscal_callback(order_id, status, password, documents, **extra):
    """A signed fiscal notification (§3.15) carrying fiscalized receipts."""
    import base64
    import json

    from cabinet.uniteller.signatures import fiscal_callback_signature

    fields = signed_callback(order_id, status, password, **extra)
    # A fiscal shop signs ApprovalCode, BillNumber, Total in this fixed order.
    fields["Signature"] = callback_signature(
        password,
        order_id,
        status,
        [fields["ApprovalCode"], fields["BillNumber"], fields["Total"]],
    )
    receipt = base64.b64encode(json.dumps(documents).encode()).decode()
    fields["Receipt"] = receipt
    fields["ReceiptSignature"] = fiscal_callback_signature(
        password, order_id, status, receipt
    )
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


_token_names = itertools.count()


def api_headers(app, *scopes):
    """Authorization headers of a new API token holding `scopes`."""
    from cabinet.api_tokens import create_token

    with in_app(app):
        _, token = create_token(f"script-{next(_token_names)}", list(scopes))
    return {"Authorization": f"Bearer {token}"}


def console_login(client, who=ADMIN):
    """Log an operator in through the console's form."""
    return client.post("/console/login", data={"login": who[0], "password": who[1]})


def free_port():
    """Return a TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def pay_by_sbp(world, amount="500", password="demo-pass"):
    """Pay by SBP as a subscriber does: /pay choosing SBP, the sandbox's QR page,
    the bank app's confirmation, back to us. Returns (order id, its pay form's
    fields, the sandbox's SBP page, the page we answered on the way back)."""
    import requests

    session = requests.Session()
    session.post(
        f"{world.url}/login",
        data={"number": world.contract_number, "password": password},
    )
    page = session.post(f"{world.url}/pay", data={"amount": amount, "method": "sbp"})
    action, fields = _form(page.text)
    location, sbp_page = _sbp(session, world, action, fields)
    return fields["Order_IDP"], fields, sbp_page, session.get(location)


def _sbp(session, world, action, fields):
    """Post a signed form to the sandbox, confirm SBP there; (Location, its page)."""
    import re

    page = session.post(action, data=fields).text
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    answer = session.post(
        f"{world.sandbox_url}/pay/sbp", allow_redirects=False, data={"token": token}
    )
    return answer.headers["Location"], page


def quick_pay_by_card(world, number, amount="500", card=SUCCESS_CARD, **extra):
    """Pay without signing in: /quick-pay, the sandbox's card form, back to us.

    Returns (order id, the page we answered on the way back); extra form fields
    (a contact) as keywords.
    """
    import requests

    session = requests.Session()
    page = session.post(
        f"{world.url}/quick-pay", data={"number": number, "amount": amount, **extra}
    )
    assert page.status_code == 200, page.text
    action, fields = _form(page.text)
    location = _card(session, world, action, fields, card)
    return fields["Order_IDP"], session.get(location)


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
            # The virtual acquirer's own test values (v1.43 §3.3.1): any mode.
            "exp_month": "01",
            "exp_year": "35",
            "cvc": "123",
            "holder": "UNITELLER TEST",
        },
    )
    return answer.headers["Location"]


def bind_autopay(
    world,
    mode,
    amount="300",
    card=SUCCESS_CARD,
    weekday=0,
    day=1,
    password="demo-pass",
    method="card",
):
    """Set up autopay in the cabinet as a subscriber does, paying once by card
    (method "sbp": binding an SBP account on the sandbox's QR page)."""
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
            "method": method,
        },
    )
    assert page.status_code == 200, page.text
    action, fields = _form(page.text)
    assert fields.get("IsRecurrentStart") == "1"
    if method == "sbp":
        location, _ = _sbp(session, world, action, fields)
    else:
        location = _card(session, world, action, fields, card)
    session.get(location)
    world.settle()
    return fields["Order_IDP"], session


def add_autopays_like(world, count, prefix="20"):
    """Give `count` more contracts (numbers prefix + 00, 01, …) of the world's
    instance an autopay like the one bound (the same parent order): a daily
    run then has that many more charges, as one batch."""
    from cabinet.models import Autopay, Contract

    with in_app(world):
        first = Autopay.get()
        for n in range(count):
            contract = Contract.create(
                number=f"{prefix}{n:02d}",
                name=f"Subscriber {n}",
                password_hash="-",
                instance=first.contract.instance,
            )
            Autopay.create(**{**first.__data__, "id": None, "contract": contract})


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


# The emulated billing's OSMP password (the osmp_world fixture's connector).
BILLING_PASSWORD = "emulated-billing-password-4Kd"


class LiveBilling:
    """The emulated ISP billing served alone, stopped and started on one port."""

    def __init__(self, books):
        self.books = books  # the EmulatedBilling: what it received outlives a stop
        self.server = None
        self.port = 0
        self.start()

    def start(self):
        """Serve it (again, on the same port once it had one)."""
        from cabinet.uniteller.sandbox.billing import create_billing_app
        from cabinet.uniteller.sandbox.testing import serve_in_thread

        self.server = serve_in_thread(create_billing_app(self.books), port=self.port)
        self.port = int(self.server.url.rsplit(":", 1)[1])

    def stop(self):
        """Stop serving: connections are refused until start()."""
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/billing"

    def paid(self):
        """The payments the billing holds (each txn_id once), by account."""
        return [p for p in self.books.state()["payments"] if not p["canceled"]]


def billing_deliveries(app_or_world, kind=None):
    """List the billing deliveries (oldest first), read fresh."""
    from cabinet.models import BillingDelivery

    with in_app(app_or_world):
        query = BillingDelivery.select().order_by(BillingDelivery.id)
        if kind:
            query = query.where(BillingDelivery.kind == kind)
        return list(query)


def make_deliveries_due(app_or_world):
    """Let time pass for the outbox: every backoff and every claim's lease runs out."""
    from cabinet.models import BillingDelivery

    long_ago = datetime(2000, 1, 1)
    with in_app(app_or_world):
        BillingDelivery.update(next_attempt_at=long_ago).where(
            BillingDelivery.state == "pending"
        ).execute()
        BillingDelivery.update(lease_until=long_ago).where(
            BillingDelivery.state == "sending"
        ).execute()


# Where the browser tests put their screenshots.
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def shot(page, name):
    """Save a full-page screenshot of a browser page to test-artifacts/."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# Seeded passwords, hashed once with werkzeug's default (scrypt:32768:8:1), the
# way flaskr keeps them in data.sql: seeding a contract or an operator costs no
# scrypt (tests/conftest.py hands these out for generate_password_hash).
PASSWORD_HASHES = {
    "demo-pass": "scrypt:32768:8:1$gYdDFcovw7AmsFkl$"
    "f356906498979c251b1cf16bd426defe845e52189b9eb1f9194f1ba6db3835db"
    "3f528023a963550ce6c4a247d0d238df7d2672b716ce37f3a42ff7b37aab22d3",
    "other-pass": "scrypt:32768:8:1$BnI1zdtRb2NKRoDd$"
    "2a9f8e8105e9f8498420c28cacadfe93bdef6ed696548fbdc2af9cde255a4c45"
    "a115c5bf7b468b51494d3b1a34b8628792d045b07b6f1c1e000e28ac30a06826",
    "admin-password": "scrypt:32768:8:1$5JcrDBt1RCmpfVZP$"
    "d666e0945c7ff09b8b5e685485f02e85445fb631c591666493d2684f9e5bd810"
    "eeeccad0f710d1a4b7e4a659decb460c693b57cf3def23a80f1e2233929293fe",
    "oper-password": "scrypt:32768:8:1$LDG2aYi0s2NlS985$"
    "f4d30b56c0a9b6e921aca4604ef6d8839e3b4a6edbea6be422520df6b86dc05e"
    "02439c4570cd8b5ed54605766a490febb242d6c0f4cc1e17fa5fcc19f413a380",
    "watcher-password": "scrypt:32768:8:1$SLHFrSfNR0pvzaNP$"
    "80076e0ddd6f968656fd56f0d41277ce1652aa015c48a092fb31874f4ab73bb1"
    "3a054a6d870f0d483e56dd153b9b38a3fc1c49a852585cda68c02cfd1bca62c5",
    "pass-2001": "scrypt:32768:8:1$zfPWe8aTDI1nfWWk$"
    "76c07562f9b14cde1bd09323e519505a434e7076559527693573cc782984bf3c"
    "99f223ef9c10e81cde28a89ca1b55b65f2987cf90f6fffc455dfe7ff42fa4fdd",
    "pass-3001": "scrypt:32768:8:1$3u2a3aDPi5O1gZiY$"
    "31e2b8d8fe4c9220b23e73d5650dfe45bb1967aa9a2ad8d2d867cfc3f4b62b5a"
    "7dca009922a4edde2a039ee1d0c3bf2cfe9e4855c2c684eb687338859b997a6b",
    "pass1": "scrypt:32768:8:1$DuVbSpQBgPgbXLY0$"
    "1ea61c282f0692fb3facbf2d239afb64a9d43820ec6e70764f228ce29beeaf78"
    "a70d60efff2f1344243dd566a348ec8e8a4893a0b60679ac506f6ea73ef399e4",
}


class FakeFiscalUniteller:
    """A small Uniteller of payments with fiscalization (02.1.18), served live.

    Until the sandbox serves /v2/*: /v2/recurrent, /v2/cancel, /v2/results and
    /results/ answer as the spec's formats say, with what a test scripts in
    `recurrent` (ok, 53, 54) and `cancel` (ok, 50, 51, lost: made, answered
    504); `rows` are the orders it knows, `requests` what it was sent (path, form).
    """

    def __init__(self, password):
        from flask import Flask, request

        from cabinet.uniteller.sandbox.testing import serve_in_thread

        self.password = password
        self.requests = []
        self.recurrent = "ok"
        self.cancel = "ok"
        self.rows = {}
        self.refund_rows = {}
        self._ids = iter(range(1, 10_000))
        app = Flask("fake-fiscal-uniteller")

        @app.post("/v2/recurrent")
        def recurrent():
            return self._recurrent(self._log("/v2/recurrent", request.form))

        @app.post("/v2/cancel")
        def cancel():
            return self._cancel(self._log("/v2/cancel", request.form))

        @app.post("/v2/results")
        @app.post("/results/")
        def results():
            return self._results(self._log(request.path, request.form))

        self.server = serve_in_thread(app)
        self.url = self.server.url

    def _log(self, path, form):
        form = dict(form)
        self.requests.append((path, form))
        return form

    def sent(self, path):
        """The forms posted to `path`, oldest first."""
        return [form for p, form in self.requests if p == path]

    def document(self, doc_type, total):
        """A fiscalized receipt (Appendix 2) of a type and a total ("300.00")."""
        number = next(self._ids)
        return {
            "fiscal": {
                "id": f"fake-{number}",
                "type": doc_type,
                "register": {
                    "fiscal_number": str(1000 + number),
                    "fiscal_date": "2026-12-01T10:00:00",
                    "fiscal_link": f"https://check.example/{number}",
                },
            },
            "total": total,
        }

    @staticmethod
    def encode(documents):
        """The base64 text of a JSON array of fiscalized receipts."""
        import base64
        import json

        return base64.b64encode(json.dumps(documents).encode()).decode()

    def _recurrent(self, form):
        from cabinet.uniteller.signatures import recurrent_answer_signature

        order, total = form["Order_IDP"], form["Subtotal_P"]
        if self.recurrent == "53":
            return "ErrorCode;ErrorMessage\r\n53;Fiscal receipt failure\r\n"
        row = {"Status": "Paid", "Total": total, "BillNumber": f"B{order[-8:]}"}
        self.rows[order] = row
        if self.recurrent == "54":
            return (
                "ErrorCode;ErrorMessage\r\n"
                "54;Fiscal receipt failure. Order not cancelled\r\n"
            )
        receipt = self.encode([self.document(0, total)])
        row["Receipt"] = receipt
        signature = recurrent_answer_signature(self.password, order, total)
        return (
            "OrderNumber;Response_Code;Total;Status;Signature;Receipt\r\n"
            f"{order};AS000;{total};Paid;{signature};{receipt}\r\n"
        )

    def _cancel(self, form):
        import json

        from cabinet.fiscal import decode

        order = form["OrderID"]
        total = f"{decode(form['Receipt'])['total']:.2f}"
        if self.cancel == "50":
            answer = {"Code": "50", "Note": "Fiscal reversal receipt failure"}
        elif self.cancel == "51":
            documents = [self.document(1, total), self.document(2, total)]
            answer = {
                "Code": "51",
                "Note": "Fiscal reversal operation failure",
                "Receipt": self.encode(documents),
            }
        else:
            self.refund_rows.setdefault(order, []).append(
                {"Status": "Refund", "Total": total}
            )
            document = self.document(1, total)
            if self.cancel == "lost":
                # Made, and its answer lost: /v2/results lists the refund row and
                # the order's receipts.
                row = self.rows.setdefault(order, {"Status": "Paid"})
                row["Receipt"] = self.encode([document])
                return "upstream timed out", 504
            full = "Subtotal" not in form
            answer = {
                "Code": "00",
                "Note": "",
                "Receipt": self.encode([document]),
                "Status": "Canceled" if full else "Paid",
                "Balance": "0.00",
            }
        return json.dumps(answer), 200, {"Content-Type": "application/json"}

    def _results(self, form):
        fields = form["S_FIELDS"].split(";")
        order = form.get("ShopOrderNumber")
        rows = (
            [{"OrderNumber": order, **self.rows[order]}] if order in self.rows else []
        )
        if form.get("PaymentsResults") == "3":
            rows += [
                {"OrderNumber": order, **r} for r in self.refund_rows.get(order, [])
            ]
        return "".join(
            ";".join(str(row.get(name, "")) for name in fields) + "\r\n" for row in rows
        )

    def stop(self):
        """Stop serving."""
        self.server.shutdown()


class RecordingShop:
    """A shop's server that records what the sandbox POSTs to it, by path.

    Serve it with the sandbox's serve_in_thread; every POST answers 200 unless
    `answers` holds HTTP codes for the next ones.
    """

    def __init__(self):
        import threading

        self.lock = threading.Lock()
        self.received = []  # (path, form or JSON body as a dict)
        self.queries = []  # (path, query string parameters as a dict)
        self.answers = []
        self.url = ""

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        with self.lock:
            body = request.get_json(silent=True) or request.form.to_dict()
            self.received.append((request.path, body))
            self.queries.append((request.path, request.args.to_dict()))
            code = self.answers.pop(0) if self.answers else 200
        return Response("OK", code)(environ, start_response)

    def posts(self, path):
        """Return the bodies POSTed to a path, oldest first."""
        with self.lock:
            return [body for where, body in self.received if where == path]


class CsrfSession(requests.Session):
    """A browser's session: each form post to one of `cabinet_urls` carries a
    fresh CSRF token and, as its Referer, the page it came from (Flask-WTF
    checks the Referer over https)."""

    cabinet_urls = ()

    def post(self, url, *args, **kwargs):
        base = next((u for u in self.cabinet_urls if url.startswith(u)), None)
        if base:
            page = self.get(f"{base}/login", timeout=10)
            token = re.search(r'X-CSRFToken": "([^"]+)"', page.text).group(1)
            kwargs["headers"] = {
                **kwargs.get("headers", {}),
                "X-CSRFToken": token,
                "Referer": page.url,
            }
        return super().post(url, *args, **kwargs)


def paid_payment(contract, amount=50000, refunded=0):
    """A payment Uniteller reported paid, `refunded` kopecks of it refunded."""
    from cabinet.models import Refund

    transaction = new_payment(contract, amount)
    fields = {"Total": format_wire(amount)}
    payments.apply_status(
        transaction.order_id, "paid", source="callback", fields=fields
    )
    if refunded:
        Refund.create(transaction=transaction, amount=refunded, status="done")
    return Transaction.get_by_id(transaction.id)


def declined_payment(contract, response_code, message="", error_code="", amount=50000):
    """A payment Uniteller declined with a Response_Code (and its own message)."""
    transaction = new_payment(contract, amount)
    payments.apply_status(
        transaction.order_id,
        "not authorized",
        source="status",
        fields={"Response_Code": response_code, "Message": message}
        | ({"Error_Code": error_code} if error_code else {}),
    )
    return Transaction.get_by_id(transaction.id)


def subscriber_story(contract):
    """Seed a contract's history a subscriber reads: paid, refunded, declined, lost."""
    from cabinet.models import Autopay

    whole = paid_payment(contract, 50000, refunded=10000)
    declined_payment(contract, "AS102", "Недостаточно средств")
    declined_payment(contract, "AS998", "F01: карта заблокирована, прекратите списания")
    expired = new_payment(contract, 20000)
    Transaction.update(status="expired").where(Transaction.id == expired.id).execute()
    Autopay.create(
        contract=contract,
        mode="weekly",
        weekday=0,
        amount=30000,
        state="active",
        parent=whole,
    )
    return whole


# Every page of the cabinet and the console, as the accessibility and the
# translation tests visit them: before anyone logs in, as subscriber 1001 (who
# is refused the console), as the admin. Formatted with seed_pages()'s values.
PUBLIC_PAGES = [
    "/login",
    "/quick-pay",
    "/handoff/no-such-link",
    "/no-such-page",
    "/console/login",
]
SUBSCRIBER_PAGES = [
    "/",
    "/pay",
    "/payments",
    "/payments/{order_id}",
    "/payments/{declined_id}",
    "/autopay",
    "{return_page}",
    "{declined_return_page}",
    "/console/",
]
CONSOLE_PAGES = [
    "/console/attention",
    "/console/contracts",
    "/console/contracts/1001",
    "/console/transactions/{order_id}",
    "/console/transactions/{declined_id}",
    "/console/monitor?instance=isp",
    "/console/monitor/summary?instance=isp",
    "/console/instances",
    "/console/instances/isp/configs",
    "/console/instances/isp/configs/new",
    "/console/instances/isp/configs/1",
    "/console/instances/isp/configs/1/versions",
    "/console/instances/isp/configs/1/activate",
    "/console/instances/isp/configs/1/copy",
    "/console/instances/isp/configs/1/diff?from=1&to=2",
    "/console/instances/isp/configs/rollback",
    "/console/receipts",
    "/console/reconcile?instance=isp",
    "/console/instances/isp/billing",
    "/console/billing/attention",
    "/console/orphans",
    "/console/tasks",
    "/console/audit",
    "/console/contract-import",
    "/console/no-such-page",
]
# The pages above that answer an error; every other one answers 200.
ERROR_PAGES = {
    "/handoff/no-such-link": 410,
    "/no-such-page": 404,
    "/console/": 403,
    "/console/no-such-page": 404,
}


def seed_pages(world, run_jobs):
    """Give the pages something to show (a weekly autopay, a paid and a declined
    payment, the admin, two configurations); return the values their paths take."""
    from cabinet import accounts, configurations

    bind_autopay(world, "weekly")
    declined_id, declined_page, _ = pay_by_card(world, "200", card=DECLINE_CARD)
    order_id, return_page, _ = pay_by_card(world, "500")
    world.settle()
    run_jobs(world.app)  # the status check that learns of the decline
    with in_app(world):
        accounts.add_operator(*ADMIN, admin=True)
        # A second version of "main" (the diff), a "spare" active (the rollback).
        instance = configurations.get_instance("isp")
        main = configurations.get_configuration(instance, "main")
        configurations.update_configuration(main, dict(main.params, min_amount="10.00"))
        configurations.copy_configuration(main, "spare", dict(main.params))
        configurations.activate_configuration(instance, "spare")
    return {
        "order_id": order_id,
        "declined_id": declined_id,
        "return_page": return_page.split(world.url)[-1],
        "declined_return_page": declined_page.split(world.url)[-1],
    }
