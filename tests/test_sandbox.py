"""Tests for the Uniteller sandbox: signatures, pay page, callbacks, API."""

import hashlib
import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
import requests
from werkzeug.wrappers import Request, Response

from cabinet.uniteller.sandbox import add_shop, create_app, wait_idle
from cabinet.uniteller.sandbox.pacing import ResultsPacer, TooManyRequests
from cabinet.uniteller.sandbox.signatures import (
    callback_signature,
    pay_signature,
    recurrent_answer_signature,
    recurrent_signature,
)
from cabinet.uniteller.sandbox.testing import serve_in_thread

SHOP_ID = "00000001"
LOGIN = "1001"
PASSWORD = "secret"
SUCCESS_CARD = "4000 0000 0000 2487"
RECURRENT_HEADER = (
    "OrderNumber;Response_Code;Recommendation;Message;Comment;Date;Total;Currency;"
    "CardType;CardNumber;LastName;FirstName;MiddleName;Address;Email;ApprovalCode;"
    "CVC2;CardHolder;IPAddress;BillNumber;BankName;Status;Error_Code;Error_Comment;"
    "PacketDate;PaymentType;Phone;Signature"
)


class Merchant:
    """A tiny shop that records callbacks and status requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.callbacks = []
        self.status_requests = []
        self.answers = []  # HTTP codes for the next callbacks; 200 once empty
        # Bodies (or (HTTP code, body)) of the next status answers, then this one.
        self.status_answers = []
        self.status_answer = "PAID"
        self.url = ""

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            if request.path == "/status":
                self.status_requests.append(request.form.to_dict())
                answer = (
                    self.status_answers.pop(0)
                    if self.status_answers
                    else self.status_answer
                )
                code, body = answer if isinstance(answer, tuple) else (200, answer)
                response = Response(body, code)
            else:
                self.callbacks.append(
                    {
                        "form": request.form.to_dict(),
                        "query": request.args.to_dict(),
                        "json": request.get_json(silent=True),
                    }
                )
                code = self.answers.pop(0) if self.answers else 200
                response = Response("OK", code)
        return response(environ, start_response)

    def statuses(self) -> list[str]:
        """Return the Status of every callback received, in order."""
        return [c["form"].get("Status") or c["json"]["Status"] for c in self.callbacks]


@pytest.fixture(autouse=True)
def no_threads_left():
    """Fail a test that leaves a sandbox worker or a served app running."""
    yield
    left = [
        thread.name
        for thread in threading.enumerate()
        if thread.name.startswith(("sandbox-worker", "wsgi-"))
    ]
    assert left == []


@pytest.fixture
def merchant():
    """The merchant served in a thread."""
    shop = Merchant()
    server = serve_in_thread(shop)
    shop.url = server.url
    yield shop
    server.shutdown()


@pytest.fixture
def make_sandbox(tmp_path, merchant):
    """Build sandbox apps on one SQLite file with a shop; close them afterwards."""
    apps = []

    def make(**settings):
        config = {
            "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
            "SANDBOX_TIME_SCALE": 0.001,
            "SANDBOX_RESULTS_INTERVAL": 0,
            "SANDBOX_STATUS_CHECK_DELAY": 0,
            **settings,
        }
        app = create_app(config)
        apps.append(app)
        add_shop(
            app,
            SHOP_ID,
            password=PASSWORD,
            login=LOGIN,
            notify_url=merchant.url + "/notify",
            status_url=merchant.url + "/status",
            callback_fields="BillNumber ApprovalCode Total",
        )
        return app

    yield make
    for app in apps:
        app.extensions["sandbox"].close()


@pytest.fixture
def sandbox_app(make_sandbox):
    """A sandbox with the default test settings."""
    return make_sandbox()


@pytest.fixture
def client(sandbox_app):
    """A test client of the sandbox."""
    return sandbox_app.test_client()


def sandbox(app):
    """Return the Sandbox object of an app."""
    return app.extensions["sandbox"]


def signed_pay_fields(order_id="ORD-1", subtotal="100.00", **extra) -> dict:
    """Return a signed /pay/ request; extra=None removes a default field."""
    fields = {
        "Shop_IDP": SHOP_ID,
        "Order_IDP": order_id,
        "Subtotal_P": subtotal,
        "URL_RETURN_OK": "http://shop.test/ok?from=sandbox",
        "URL_RETURN_NO": "http://shop.test/no",
        **extra,
    }
    fields = {name: value for name, value in fields.items() if value is not None}
    fields["Signature"] = pay_signature(fields, PASSWORD)
    return fields


def open_form(client, order_id="ORD-1", subtotal="100.00", **extra) -> str:
    """Load the payment page and return the form's token."""
    page = client.post("/pay/", data=signed_pay_fields(order_id, subtotal, **extra))
    match = re.search(r'name="token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def pay(
    client,
    order_id="ORD-1",
    subtotal="100.00",
    card=SUCCESS_CARD,
    expiry=("12", "35"),
    holder="IVAN IVANOV",
    cvc="123",
    **extra,
):
    """Open the form and submit a card; return the response."""
    token = open_form(client, order_id, subtotal, **extra)
    form = {
        "token": token,
        "card_number": card,
        "exp_month": expiry[0],
        "exp_year": expiry[1],
        "cvc": cvc,
        "holder": holder,
    }
    return client.post("/pay/card", data=form)


def results(client, **params):
    """Ask /results/ with the shop's credentials."""
    data = {
        "Shop_ID": SHOP_ID,
        "Login": LOGIN,
        "Password": PASSWORD,
        "Format": "1",
        **params,
    }
    environ = data.pop("environ_base", None) or {}
    data = {name: value for name, value in data.items() if value is not None}
    return client.post("/results/", data=data, environ_base=environ)


def result_row(client, order_id, fields="OrderNumber;Status;Response_Code"):
    """Return one order's /results/ row as a list of values."""
    answer = results(client, ShopOrderNumber=order_id, S_FIELDS=fields)
    lines = answer.text.split("\r\n")
    assert len(lines) == 2 and lines[1] == "", answer.text
    return lines[0].split(";")


def paid_order(client, app, order_id="ORD-1", subtotal="100.00", **extra) -> dict:
    """Pay an order successfully, wait for its callbacks and return the order."""
    assert pay(client, order_id, subtotal, **extra).status_code == 302
    assert wait_idle(app)
    return sandbox(app).attempts_of(SHOP_ID, order_id)[-1]


def md5_upper(text: str) -> str:
    """Return UPPER(md5(text)), written here apart from the sandbox's code."""
    return hashlib.md5(text.encode()).hexdigest().upper()


# -- §13 vectors --

PAY_VECTORS = [
    ({"Subtotal_P": "100.00"}, "secret", "E5227F1B81D7A004EAABD171F9188476"),
    ({"Subtotal_P": "100"}, "secret", "D01587CCD67B511B89DA7A06B1FBD582"),
    (
        {"Subtotal_P": "100.00", "Lifetime": "300", "Customer_IDP": "cust-42"},
        "secret",
        "5281BCC8D96B5E0A5086CB154AB446DC",
    ),
    (
        {
            "Subtotal_P": "100.00",
            "MeanType": "0",
            "EMoneyType": "0",
            "Lifetime": "300",
            "OrderLifetime": "3600",
        },
        "secret",
        "F4C67FF0F2E8CD653ABFFE5314AB5CB6",
    ),
    (
        {"Shop_IDP": "12345678-1234", "Order_IDP": "A1", "Subtotal_P": "12.34"},
        "1qaz2wsx",
        "3AEEFF4927BBA9A7EC27748F4C42CA34",
    ),
]


@pytest.mark.parametrize(("fields", "password", "expected"), PAY_VECTORS)
def test_pay_signature_vectors(fields, password, expected):
    fields = {"Shop_IDP": "00000001", "Order_IDP": "ORD-1", **fields}
    assert pay_signature(fields, password) == expected


def test_recurrent_signature_vectors():
    plain = recurrent_signature("00000001", "ORD-2", "100.00", "ORD-1", "secret")
    assert plain == "D1E1CDB5C81EA01D10C0F7F34FE70961"
    other_shop = recurrent_signature(
        "00000001", "ORD-2", "100.00", "ORD-1", "secret", parent_shop_id="00000002"
    )
    assert other_shop == "8085273C13A9D69AB6A05225094A85B2"
    answer = recurrent_answer_signature("ORD-2", "100.00", "secret")
    assert answer == "F84785A1A9070A9B54DAC34588AA79BF"


@pytest.mark.parametrize(
    ("status", "values", "expected"),
    [
        ("authorized", [], "A785357D0458C92EBBCF276F8E3159A9"),
        ("paid", [], "36F9A1C0436DC792EAFFF4DC2020649E"),
        ("canceled", [], "CA0822FDFE655B9E1722116F930EC439"),
        (
            "paid",
            ["123456789012", "AB1234", "100.00"],
            "2BF669F096352A1CEA50C8F96524D93B",
        ),
    ],
)
def test_callback_signature_vectors(status, values, expected):
    assert callback_signature("ORD-1", status, values, "secret") == expected


# -- the payment page --

LONG_URL = "http://shop.test/" + "x" * 250


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Shop_IDP": None}, "Please specify shop id"),
        (
            {"Signature": None},
            "Mandatory parameter Signature is not present in the request",
        ),
        (
            {"Order_IDP": ""},
            "Mandatory parameter Order_IDP is not present in the request",
        ),
        (
            {"Subtotal_P": "abc"},
            "Subtotal_P must be a valid positive floating point number",
        ),
        (
            {"Subtotal_P": "-5.00"},
            "Subtotal_P must be a valid positive floating point number",
        ),
        (
            {"Subtotal_P": "0.00"},
            "Subtotal_P must be a valid positive floating point number",
        ),
        (
            {"Subtotal_P": "10.123"},
            "Subtotal_P must have one or two digits after the decimal point",
        ),
        (
            {"Subtotal_P": "10."},
            "Subtotal_P must have one or two digits after the decimal point",
        ),
        ({"Shop_IDP": "99999999"}, "Wrong Shop_IDP"),
        (
            {"URL_RETURN_OK": None},
            "URL_RETURN_OK or URL_RETURN must be present in the request",
        ),
        ({"URL_RETURN_OK": "http://магазин.рф/ok"}, "URL_RETURN_OK is not valid"),
        ({"URL_RETURN_NO": LONG_URL}, "URL_RETURN_NO is not valid"),
        ({"URL_RETURN": "ftp://shop.test/"}, "URL_RETURN is not valid"),
        ({"Lifetime": "abc"}, "Lifetime must be a valid positive integer number"),
        ({"Lifetime": "-1"}, "Lifetime must be a valid positive integer number"),
        ({"CallbackFields": "BillNumber Bogus"}, "CallbackFields is not valid"),
        # Known fields, but over Uniteller's 29 characters (v1.43, Table 2 #16).
        (
            {"CallbackFields": "BillNumber ApprovalCode Total Balance"},
            "CallbackFields is not valid",
        ),
        # Over-long values: Table 36 names the value, not the parameter.
        ({"Order_IDP": "x" * 128}, "x" * 128 + " is too long"),
        ({"Customer_IDP": "c" * 65}, "c" * 65 + " is too long"),
        ({"PT_Code": "p" * 11}, "p" * 11 + " is too long"),
        ({"Comment": "c" * 1025}, "c" * 1025 + " is too long"),
        ({"Order_IDP": "   "}, "Bad Order_IDP parameter value    "),
        ({"Shop_IDP": "shop_1"}, "Bad Shop_IDP parameter value shop_1"),
        # Reserved by Uniteller (v1.43 §4.4.3.2); blank is no customer id either.
        ({"Customer_IDP": "Nobody"}, "Bad Customer_IDP parameter value Nobody"),
        ({"Customer_IDP": "  "}, "Bad Customer_IDP parameter value   "),
        ({"Language": "de"}, "Bad Language parameter value de"),
        ({"Language": "RU"}, "Bad Language parameter value RU"),
        ({"MeanType": "6"}, "Bad MeanType parameter value 6"),
        ({"EMoneyType": "2"}, "Bad EMoneyType parameter value 2"),
        ({"Preauth": "0"}, "Bad Preauth parameter value 0"),
        ({"IsRecurrentStart": "4"}, "Bad IsRecurrentStart parameter value 4"),
        ({"IsRecurrentStart": "yes"}, "Bad IsRecurrentStart parameter value yes"),
        ({"Currency": "GBP"}, "Incorrect currency"),
        ({"Currency": "rub"}, "Incorrect currency"),
        ({"BillLifetime": "1081"}, "Bad BillLifetime parameter value 1081"),
        (
            {"OrderLifetime": "0"},
            "OrderLifetime must be a valid positive integer number",
        ),
        (
            {"Comment": "two\r\nlines"},
            "Parameter Comment contains invalid characters \\r \\n",
        ),
        (
            {"FirstName": "Ivan\n"},
            "Parameter FirstName contains invalid characters \\r \\n",
        ),
    ],
)
def test_pay_merchant_errors(client, change, reason):
    assert_merchant_error(client, change, reason)


def assert_merchant_error(client, change, reason):
    """Load /pay/ with a change to a signed request; expect Uniteller's refusal."""
    fields = signed_pay_fields(**{k: v for k, v in change.items() if k == "Shop_IDP"})
    fields.update(change)
    fields = {name: value for name, value in fields.items() if value is not None}
    if "Shop_IDP" not in change and "Signature" not in change:
        fields["Signature"] = pay_signature(fields, PASSWORD)
    page = client.post("/pay/", data=fields)
    assert f"<body><!-- MERCHANT ERROR: {reason} -->" in page.text
    assert 'name="card_number"' not in page.text


# Every length limit of v1.43 Tables 1 and 2, written from the spec.
LIMITS = [
    ("Shop_IDP", 64, "A"),
    ("Order_IDP", 127, "o"),
    ("Email", 64, "e"),
    ("Customer_IDP", 64, "c"),
    ("Card_IDP", 128, "k"),
    ("MerchantOrderId", 256, "m"),
    ("PT_Code", 10, "p"),
    ("Token_IDP", 11, "1"),
    ("BackUrl", 255, "b"),
    ("DeepLink", 255, "d"),
    ("EWallet", 64, "w"),
    ("DestPhoneNum", 12, "7"),
    ("Comment", 1024, "c"),
    ("FirstName", 64, "f"),
    ("LastName", 64, "l"),
    ("MiddleName", 64, "m"),
    ("Phone", 64, "9"),
    ("PhoneVerified", 64, "9"),
    ("Address", 128, "a"),
    ("Country", 64, "c"),
    ("State", 3, "s"),
    ("City", 64, "c"),
    ("Zip", 64, "1"),
]


@pytest.mark.parametrize(("name", "limit", "char"), LIMITS)
def test_pay_refuses_every_value_over_its_length(client, name, limit, char):
    assert_merchant_error(
        client, {name: char * (limit + 1)}, char * (limit + 1) + " is too long"
    )


def test_pay_takes_every_value_at_its_length(client):
    at_limit = {name: char * limit for name, limit, char in LIMITS}
    at_limit["Shop_IDP"] = SHOP_ID
    page = client.post("/pay/", data=signed_pay_fields(**at_limit))
    assert "MERCHANT ERROR" not in page.text and 'name="card_number"' in page.text


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("Language", ["ru", "en"]),
        ("MeanType", ["0", "1", "2", "3", "4", "5"]),
        ("EMoneyType", ["0", "1", "13", "18", "19", "29"]),
        ("IsRecurrentStart", ["1", "2", "3"]),
        ("Currency", ["RUB", "AZN", "EUR", "KGS", "KZT", "UAH", "USD"]),
        ("Preauth", ["1"]),
        ("BillLifetime", ["1", "1080"]),
    ],
)
def test_pay_takes_every_documented_value(client, name, values):
    for value in values:
        page = client.post("/pay/", data=signed_pay_fields(**{name: value}))
        assert "MERCHANT ERROR" not in page.text, (name, value)


def test_pay_lower_case_signature_is_not_valid(client):
    fields = signed_pay_fields()
    fields["Signature"] = fields["Signature"].lower()
    page = client.post("/pay/", data=fields)
    assert "<body><!-- MERCHANT ERROR: Signature is not valid -->" in page.text


def test_pay_wrong_signature(client):
    fields = signed_pay_fields()
    fields["Subtotal_P"] = "200.00"
    page = client.post("/pay/", data=fields)
    assert "<body><!-- MERCHANT ERROR: Signature is not valid -->" in page.text


def test_pay_signature_needs_order_lifetime_slot_only_when_sent(client):
    fields = signed_pay_fields(OrderLifetime="3600")
    assert 'name="card_number"' in client.post("/pay/", data=fields).text
    # Signed as if OrderLifetime were absent: the slot is missing.
    fields["Signature"] = pay_signature(
        {k: v for k, v in fields.items() if k != "OrderLifetime"}, PASSWORD
    )
    page = client.post("/pay/", data=fields)
    assert "MERCHANT ERROR: Signature is not valid" in page.text


def test_pay_accepts_get_without_slash_and_all_optional_slots(client):
    fields = signed_pay_fields(
        MeanType="0",
        Lifetime="300",
        OrderLifetime="3600",
        PhoneVerified="+7900",
        MerchantOrderId="m-1",
        Customer_IDP="cust-42",
        URL_RETURN="http://s.test/r",
    )
    page = client.get("/pay", query_string=fields)
    assert page.status_code == 200
    assert "MERCHANT ERROR" not in page.text


def test_card_form_shows_order_and_keeps_request_server_side(client):
    page = client.post("/pay/", data=signed_pay_fields("ORD-77", "1234.50"))
    for name in ("card_number", "exp_month", "exp_year", "cvc", "holder"):
        assert f'name="{name}"' in page.text
    assert "1234.50" in page.text and "ORD-77" in page.text and SHOP_ID in page.text
    assert "4000000000002487" in page.text and "4000000000002479" in page.text
    hidden = re.findall(r'type="hidden" name="(\w+)"', page.text)
    assert hidden == ["token"]
    assert 'type="submit"' in page.text


def test_expired_form_is_refused(client, sandbox_app):
    token = open_form(client, Lifetime="300")
    sandbox(sandbox_app).store.run(
        "UPDATE pay_sessions SET expires_at = expires_at - 301 WHERE token = ?",
        (token,),
    )
    form = {
        "token": token,
        "card_number": SUCCESS_CARD,
        "exp_month": "12",
        "exp_year": "35",
        "cvc": "123",
    }
    assert "истекло" in client.post("/pay/card", data=form).text
    assert sandbox(sandbox_app).attempts_of(SHOP_ID, "ORD-1") == []


def test_card_form_asks_again_for_a_malformed_card(client):
    token = open_form(client)
    form = {
        "token": token,
        "card_number": "12ab",
        "exp_month": "1",
        "exp_year": "35",
        "cvc": "123",
    }
    page = client.post("/pay/card", data=form)
    assert "Проверьте номер карты" in page.text and 'name="card_number"' in page.text
    assert sandbox(client.application).attempts_of(SHOP_ID, "ORD-1") == []


def test_success_sends_signed_callbacks_and_returns_with_order_id(
    client, sandbox_app, merchant
):
    answer = pay(client, "ORD-1", "100.00")
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert location.netloc == "shop.test" and location.path == "/ok"
    assert parse_qs(location.query) == {"from": ["sandbox"], "Order_ID": ["ORD-1"]}
    assert wait_idle(sandbox_app)
    assert merchant.statuses() == ["authorized", "paid"]
    for callback in merchant.callbacks:
        form = callback["form"]
        assert list(form) == [
            "Order_ID",
            "Status",
            "BillNumber",
            "ApprovalCode",
            "Total",
            "Signature",
        ]
        assert callback["query"] == form
        assert re.fullmatch(r"\d{12}", form["BillNumber"]) and form["ApprovalCode"]
        assert form["Total"] == "100.00"
        signed = "ORD-1" + form["Status"] + form["BillNumber"] + form["ApprovalCode"]
        assert form["Signature"] == md5_upper(signed + "100.00" + PASSWORD)
    assert result_row(client, "ORD-1") == ["ORD-1", "Paid", "AS000"]


def test_callback_fields_of_the_request_and_json_format(client, sandbox_app, merchant):
    pay(client, CallbackFields="Total BillNumber", CallbackFormat="json", Preauth="1")
    assert wait_idle(sandbox_app)
    (callback,) = merchant.callbacks
    body = callback["json"]
    assert list(body) == ["Order_ID", "Status", "Total", "BillNumber", "Signature"]
    assert all(isinstance(value, str) for value in body.values())
    expected = md5_upper("ORD-1authorized100.00" + body["BillNumber"] + PASSWORD)
    assert body["Signature"] == expected and callback["query"] == body


def test_paid_order_cannot_be_paid_again(client, sandbox_app):
    paid_order(client, sandbox_app)
    page = client.post("/pay/", data=signed_pay_fields())
    assert "Данный заказ не может быть оплачен" in page.text
    assert 'name="card_number"' not in page.text


def test_form_submitted_twice_is_refused(client, sandbox_app):
    token = open_form(client)
    form = {
        "token": token,
        "card_number": SUCCESS_CARD,
        "exp_month": "12",
        "exp_year": "2035",
        "cvc": "123",
    }
    assert client.post("/pay/card", data=form).status_code == 302
    assert "не может быть оплачен" in client.post("/pay/card", data=form).text
    assert len(sandbox(sandbox_app).attempts_of(SHOP_ID, "ORD-1")) == 1


def test_failed_order_id_may_be_retried(client, sandbox_app, merchant):
    assert pay(client, card="4000000000002479").status_code == 302
    paid = paid_order(client, sandbox_app)
    assert paid["status"] == "paid"
    assert len(sandbox(sandbox_app).attempts_of(SHOP_ID, "ORD-1")) == 2
    assert result_row(client, "ORD-1") == ["ORD-1", "Paid", "AS000"]


@pytest.mark.parametrize(
    ("card", "expiry", "subtotal", "code"),
    [
        ("4000000000002479", ("12", "35"), "100.00", "AS100"),
        ("4000000000002488", ("12", "35"), "100.00", "AS100"),
        ("4405050300000001", ("12", "35"), "100.00", "AS100"),
        ("4111111111111111", ("12", "35"), "100.00", "AS101"),
        ("5000000000002443", ("01", "20"), "100.00", "AS104"),
        ("2200060300746821", ("12", "35"), "370.00", "AS104"),
        ("4000000000002420", ("12", "35"), "379.99", "AS104"),
        ("4000000000002438", ("12", "35"), "1000.01", "AS102"),
        ("5000000000002450", ("12", "35"), "2000.00", "AS102"),
        ("4000000000002487", ("12", "35"), "2000.01", "AS100"),
        ("4000000000002487", ("12", "35"), "3000.00", "AS100"),
    ],
)
def test_declines_return_to_url_return_no_without_callback(
    client, sandbox_app, merchant, card, expiry, subtotal, code
):
    answer = pay(client, "ORD-9", subtotal, card=card, expiry=expiry)
    assert answer.headers["Location"] == "http://shop.test/no?Order_ID=ORD-9"
    assert wait_idle(sandbox_app)
    assert merchant.callbacks == []
    row = result_row(client, "ORD-9", "OrderNumber;Status;Response_Code;Message")
    assert row[:3] == ["ORD-9", "Not Authorized", code] and row[3]


@pytest.mark.parametrize(
    "subtotal", ["10.00", "369.99", "380.00", "1000.00", "5000.01"]
)
def test_amounts_outside_the_bands_succeed(client, sandbox_app, subtotal):
    assert paid_order(client, sandbox_app, "ORD-5", subtotal)["status"] == "paid"


def test_failure_with_url_return_only_goes_there(client):
    answer = pay(
        client,
        card="4000000000002479",
        URL_RETURN_OK=None,
        URL_RETURN_NO=None,
        URL_RETURN="http://shop.test/back",
    )
    assert answer.headers["Location"] == "http://shop.test/back?Order_ID=ORD-1"


def test_delayed_success_band(make_sandbox, merchant):
    app = make_sandbox(SANDBOX_DELAYED_SUCCESS_SECONDS=500)
    client = app.test_client()
    answer = pay(client, "ORD-D", "4000.00")
    assert answer.headers["Location"].startswith("http://shop.test/ok?")
    assert result_row(client, "ORD-D") == ["ORD-D", "Waiting", ""]
    assert (
        "не может быть оплачен"
        in client.post("/pay/", data=signed_pay_fields("ORD-D", "4000.00")).text
    )
    assert wait_idle(app)
    assert merchant.statuses() == ["authorized", "paid"]
    assert result_row(client, "ORD-D") == ["ORD-D", "Paid", "AS000"]


def test_preauth_stays_authorized(client, sandbox_app, merchant):
    order = paid_order(client, sandbox_app, Preauth="1")
    assert order["status"] == "authorized"
    assert merchant.statuses() == ["authorized"]
    assert result_row(client, "ORD-1", "Status;need_confirm") == ["Authorized", "1"]


def test_only_the_masked_card_number_is_stored(client, sandbox_app, tmp_path):
    paid_order(client, sandbox_app)
    pay(client, "ORD-2", card="4000 0000 0000 2479")
    assert wait_idle(sandbox_app)
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("sandbox.sqlite3*"))
    assert b"400000******2487" in stored
    for number in (b"4000000000002487", b"4000000000002479", b"4000 0000 0000"):
        assert number not in stored
    page = client.get("/_sandbox/").text
    assert "400000******2487" in page and "4000000000002487" not in page


# -- specification test mode (SANDBOX_MODE=spec, v1.43 §3.3) --

SPEC_CARDS = [
    "4000000000002487",
    "4000000000002420",
    "4000000000002438",
    "5000000000002443",
    "5000000000002450",
    "2200060300746821",
]
SPEC_CARD = {"expiry": ("01", "35"), "holder": "UNITELLER TEST", "cvc": "123"}


@pytest.fixture
def spec_app(make_sandbox):
    """A sandbox in specification test mode."""
    return make_sandbox(SANDBOX_MODE="spec")


@pytest.mark.parametrize("card", SPEC_CARDS)
@pytest.mark.parametrize("subtotal", ["10.00", "55.50", "100.00"])
def test_spec_mode_pays_with_the_virtual_acquirers_test_cards(
    spec_app, merchant, card, subtotal
):
    client = spec_app.test_client()
    answer = pay(client, "ORD-S", subtotal, card=card, **SPEC_CARD)
    assert answer.headers["Location"].startswith("http://shop.test/ok?")
    assert wait_idle(spec_app)
    assert merchant.statuses() == ["authorized", "paid"]
    assert result_row(client, "ORD-S") == ["ORD-S", "Paid", "AS000"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"card": "4000000000002479"}, "AS100"),  # the one decline card
        ({"card": "4000000000002488"}, "AS101"),  # v1.29's, not a test card now
        ({"card": "4405050300000001"}, "AS101"),
        ({"card": "4111111111111111"}, "AS101"),
        ({"expiry": ("12", "35")}, "AS104"),  # a valid future date, not 01/35
        ({"expiry": ("01", "2036")}, "AS104"),
        ({"holder": "IVAN IVANOV"}, "AS100"),
        ({"cvc": "321"}, "AS100"),
        ({"cvc": "1234"}, "AS100"),
    ],
)
def test_spec_mode_declines_anything_but_the_test_card_data(
    spec_app, merchant, change, code
):
    client = spec_app.test_client()
    card = {"card": SUCCESS_CARD, **SPEC_CARD, **change}
    answer = pay(client, "ORD-S", "50.00", **card)
    assert answer.headers["Location"] == "http://shop.test/no?Order_ID=ORD-S"
    assert wait_idle(spec_app)
    assert merchant.callbacks == []
    assert result_row(client, "ORD-S") == ["ORD-S", "Not Authorized", code]


def test_spec_mode_reads_the_holder_as_a_card_form_does(spec_app):
    client = spec_app.test_client()
    card = {**SPEC_CARD, "holder": " uniteller  test "}
    assert pay(client, "ORD-S", "50.00", **card).status_code == 302
    assert wait_idle(spec_app)
    assert result_row(client, "ORD-S") == ["ORD-S", "Paid", "AS000"]


def test_spec_mode_card_form_requires_the_holder(spec_app):
    client = spec_app.test_client()
    answer = pay(client, "ORD-S", "50.00", **{**SPEC_CARD, "holder": ""})
    assert "Укажите имя владельца карты" in answer.text
    assert 'name="card_number"' in answer.text
    assert sandbox(spec_app).attempts_of(SHOP_ID, "ORD-S") == []


@pytest.mark.parametrize("subtotal", ["9.99", "100.01", "500.00", "0.01"])
def test_spec_mode_refuses_amounts_outside_10_to_100_roubles(spec_app, subtotal):
    page = spec_app.test_client().post(
        "/pay/", data=signed_pay_fields("ORD-S", subtotal)
    )
    assert (
        "<body><!-- MERCHANT ERROR: Subtotal_P must be from 10.00 to 100.00"
        " in the test environment -->" in page.text
    )
    assert 'name="card_number"' not in page.text


def test_spec_mode_card_form_lists_the_spec_test_data(spec_app):
    page = spec_app.test_client().post("/pay/", data=signed_pay_fields("O", "50.00"))
    for text in ("01/35", "UNITELLER TEST", "CVV 123", "10.00", "100.00"):
        assert text in page.text
    assert "4000000000002479" in page.text and "4000000000002488" not in page.text
    assert "2000.01" not in page.text  # no demo amount bands


def test_spec_mode_refund_and_recurrent_charge(spec_app, merchant):
    client = spec_app.test_client()
    pay(client, "PARENT", "100.00", IsRecurrentStart="1", **SPEC_CARD)
    assert wait_idle(spec_app)
    parent = sandbox(spec_app).attempts_of(SHOP_ID, "PARENT")[-1]
    assert parent["status"] == "paid"
    refund = unblock(client, parent["bill_number"], Subtotal_P="40.00")
    assert answer_row(refund)["Status"] == "Paid"
    charged = parse_recurrent(recurrent(client, "REC-1", "10.00", "PARENT"))
    assert (charged["Response_Code"], charged["Status"]) == ("AS000", "Authorized")
    # Outside 10.00-100.00 the amount is a value out of range: error 5.
    refused = recurrent(client, "REC-2", "100.01", "PARENT")
    assert refused.text == (
        "ErrorCode;ErrorMessage\r\n5;Field Subtotal_P has bad format\r\n"
    )
    assert wait_idle(spec_app)
    assert result_row(client, "REC-1") == ["REC-1", "Paid", "AS000"]


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="SANDBOX_MODE must be one of demo, spec"):
        create_app(
            {"SANDBOX_DATABASE": str(tmp_path / "s.sqlite3"), "SANDBOX_MODE": "live"}
        )


# -- callback delivery --


def attempts(app, order_id="ORD-1"):
    """Return (status, http_code, error) of every delivery try of an order."""
    order = sandbox(app).attempts_of(SHOP_ID, order_id)[-1]
    return [
        (callback["status"], attempt["http_code"], attempt["error"])
        for callback in sandbox(app).callbacks_of(order["id"])
        for attempt in callback["attempts_made"]
    ]


def callback_states(app, order_id="ORD-1"):
    """Return (status, state) of every callback of an order."""
    order = sandbox(app).attempts_of(SHOP_ID, order_id)[-1]
    return [(c["status"], c["state"]) for c in sandbox(app).callbacks_of(order["id"])]


def set_faults(client, **faults):
    """Merge faults into the sandbox's set."""
    answer = client.post("/_sandbox/faults", json=faults)
    assert answer.status_code == 200, answer.text


def test_injected_http_errors_are_retried(client, sandbox_app, merchant):
    set_faults(client, callback_http_errors=2)
    paid_order(client, sandbox_app, Preauth="1")
    assert attempts(sandbox_app) == [
        ("authorized", 503, "injected HTTP 503"),
        ("authorized", 503, "injected HTTP 503"),
        ("authorized", 200, ""),
    ]
    assert merchant.statuses() == ["authorized"]


def test_merchant_500_then_200(client, sandbox_app, merchant):
    merchant.answers = [500]
    paid_order(client, sandbox_app, Preauth="1")
    assert attempts(sandbox_app) == [("authorized", 500, ""), ("authorized", 200, "")]
    assert callback_states(sandbox_app) == [("authorized", "delivered")]
    assert merchant.statuses() == ["authorized", "authorized"]


def test_newer_status_stops_retries_of_older(client, sandbox_app, merchant):
    merchant.answers = [500, 500]
    paid_order(client, sandbox_app)
    assert callback_states(sandbox_app) == [
        ("authorized", "superseded"),
        ("paid", "delivered"),
    ]
    assert merchant.statuses() == ["authorized", "paid", "paid"]


def test_ten_tries_then_failed(make_sandbox, merchant):
    app = make_sandbox(SANDBOX_TIME_SCALE=0.0001)  # 3.5 hours in 1.3 seconds
    merchant.answers = [503] * 20
    paid_order(app.test_client(), app, Preauth="1")
    assert [code for _, code, _ in attempts(app)] == [503] * 10
    assert callback_states(app) == [("authorized", "failed")]


def test_duplicate_callbacks(client, sandbox_app, merchant):
    set_faults(client, duplicate_callbacks=3)
    paid_order(client, sandbox_app, Preauth="1")
    assert merchant.statuses() == ["authorized"] * 3
    assert len({json.dumps(c["form"]) for c in merchant.callbacks}) == 1


def test_reordered_callbacks(client, sandbox_app, merchant):
    set_faults(client, reorder_callbacks=True)
    paid_order(client, sandbox_app)
    assert merchant.statuses() == ["paid", "authorized"]


def test_dropped_callbacks(client, sandbox_app, merchant):
    set_faults(client, drop_callbacks=True)
    paid_order(client, sandbox_app)
    assert merchant.callbacks == []
    assert callback_states(sandbox_app) == [
        ("authorized", "dropped"),
        ("paid", "dropped"),
    ]
    assert attempts(sandbox_app)[0][2] == "dropped (fault injection)"


def test_restart_resumes_pending_deliveries(make_sandbox, merchant):
    first = make_sandbox()
    sandbox(first).stop()
    pay(first.test_client())
    assert merchant.callbacks == []
    second = make_sandbox()
    assert wait_idle(second)
    assert merchant.statuses() == ["authorized", "paid"]


@pytest.mark.parametrize(
    ("answer", "status", "callbacks"),
    [
        ("PAID", "authorized", ["authorized"]),
        ("NEW", "authorized", ["authorized", "authorized"]),
        ("CANCELLED", "canceled", ["authorized", "canceled"]),
    ],
)
def test_status_check(make_sandbox, merchant, answer, status, callbacks):
    app = make_sandbox(SANDBOX_STATUS_CHECK_DELAY=50, SANDBOX_STATUS_CHECK_JITTER=0)
    merchant.status_answer = answer
    order = paid_order(app.test_client(), app, Preauth="1")
    assert merchant.status_requests == [{"order_id": "ORD-1", "upoint_id": SHOP_ID}]
    assert order["status"] == status
    assert merchant.statuses() == callbacks
    (check,) = sandbox(app).status_checks_of(order["id"])
    assert check["answer"] == answer


def status_check_offsets(app, order_ids):
    """Return when each order's first status request was due, after its block."""
    offsets = []
    for order_id in order_ids:
        order = sandbox(app).attempts_of(SHOP_ID, order_id)[-1]
        task = sandbox(app).store.one(
            "SELECT due_at FROM tasks WHERE kind = 'status_check' AND ref = ?"
            " ORDER BY id",
            (order["id"],),
        )
        offsets.append(task["due_at"] - order["authorized_at"])
    return offsets


def test_status_request_goes_ten_minutes_after_the_block_plus_up_to_five(
    make_sandbox,
):
    # v1.43 §4.7.1: 10 minutes by default, sent within <that + 5 minutes>.
    app = make_sandbox(SANDBOX_STATUS_CHECK_DELAY=600, SANDBOX_TIME_SCALE=0.001)
    sandbox(app).stop()
    client = app.test_client()
    order_ids = [f"ORD-{n}" for n in range(6)]
    for order_id in order_ids:
        pay(client, order_id, Preauth="1")
    offsets = status_check_offsets(app, order_ids)
    assert all(0.6 <= offset <= 0.9 for offset in offsets), offsets
    assert len(set(offsets)) > 1


@pytest.mark.parametrize("bad", ["nonsense", "", (500, "PAID"), (404, "NEW")], ids=repr)
def test_status_request_without_a_valid_answer_is_asked_again_then_counts_as_new(
    make_sandbox, merchant, bad
):
    app = make_sandbox(SANDBOX_STATUS_CHECK_DELAY=50, SANDBOX_STATUS_CHECK_JITTER=0)
    merchant.status_answer = bad
    order = paid_order(app.test_client(), app, Preauth="1")
    checks = sandbox(app).status_checks_of(order["id"])
    # The first request and 3 more, 300 s (scaled) apart.
    assert len(checks) == len(merchant.status_requests) == 4
    assert all(check["answer"] == "" for check in checks)
    gaps = [b["at"] - a["at"] for a, b in zip(checks, checks[1:], strict=False)]
    assert all(gap >= 0.3 for gap in gaps), gaps
    # Then Uniteller takes it that the shop does not know: the callback again.
    assert merchant.statuses() == ["authorized", "authorized"]
    assert sandbox(app).order(order["id"])["status"] == "authorized"


def test_status_request_answered_on_a_later_try(make_sandbox, merchant):
    app = make_sandbox(SANDBOX_STATUS_CHECK_DELAY=50, SANDBOX_STATUS_CHECK_JITTER=0)
    merchant.status_answers = [(503, ""), "CANCELLED"]
    order = paid_order(app.test_client(), app, Preauth="1")
    assert [c["answer"] for c in sandbox(app).status_checks_of(order["id"])] == [
        "",
        "CANCELLED",
    ]
    assert order["status"] == "canceled"
    assert merchant.statuses() == ["authorized", "canceled"]


def test_cancelled_answer_releases_a_captured_payment_too(make_sandbox, merchant):
    app = make_sandbox(
        SANDBOX_STATUS_CHECK_DELAY=50,
        SANDBOX_STATUS_CHECK_JITTER=0,
        SANDBOX_CAPTURE_DELAY=0,
    )
    merchant.status_answer = "CANCELLED"
    client = app.test_client()
    order = paid_order(client, app)
    assert order["status"] == "canceled" and order["balance"] == 0
    assert merchant.statuses() == ["authorized", "paid", "canceled"]
    answer = results(client, PaymentsResults="3", S_FIELDS="Status;Total")
    assert answer.text == "Canceled;100.00\r\nRefund;100.00\r\n"


# -- /results/ --


def test_results_csv_follows_s_fields_with_header_and_delimiter(client, sandbox_app):
    order = paid_order(client, sandbox_app)
    answer = results(
        client,
        ShopOrderNumber="ORD-1",
        Header1="1",
        Delimiter="/",
        S_FIELDS="Total;OrderNumber;BillNumber;CardNumber;Status;Date",
    )
    assert answer.status_code == 200
    header, row, end = answer.text.split("\r\n")
    assert header == "Total/OrderNumber/BillNumber/CardNumber/Status/Date"
    values = row.split("/")
    assert values[:5] == [
        "100.00",
        "ORD-1",
        order["bill_number"],
        "400000******2487",
        "Paid",
    ]
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", values[5])
    assert end == ""


def test_results_default_columns(client, sandbox_app):
    paid_order(client, sandbox_app)
    answer = results(client, Header1="1")
    header = answer.text.split("\r\n")[0]
    assert header + ";Signature" == RECURRENT_HEADER


@pytest.mark.parametrize("delimiter", ["|", "\t", ";;", "x"])
def test_results_other_delimiters_give_the_default(client, sandbox_app, delimiter):
    paid_order(client, sandbox_app)
    answer = results(client, Delimiter=delimiter, S_FIELDS="OrderNumber;Status")
    assert answer.text == "ORD-1;Paid\r\n"


def test_results_xml_has_the_request_the_field_names_then_the_orders(
    client, sandbox_app
):
    paid_order(client, sandbox_app)
    pay(client, "ORD-<2>", card="4000000000002479")
    answer = results(client, Format="4", S_FIELDS="OrderNumber;Status;Response_Code")
    assert answer.mimetype == "text/xml"
    assert answer.text.startswith(
        "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>"
        "<unitellerresult firstcode='' secondcode='' count='2'><request>"
    )
    root = ElementTree.fromstring(answer.text.encode())
    assert [child.tag for child in root] == ["request", "orders"]
    assert [child.tag for child in root.find("request")] == [
        "zipflag",
        "shopordernumber",
        "shop_id",
        "format",
        "delimiter",
        "opendelimiter",
        "closedelimiter",
        "rowdelimiter",
        "meantype",
        "emoneytype",
        "startdate",
        "enddate",
        "success",
    ]
    assert root.findtext("request/shop_id") == SHOP_ID
    assert root.findtext("request/format") == "4"
    assert re.fullmatch(
        r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", root.findtext("request/startdate")
    )
    orders = root.find("orders")
    field, *rows = list(orders)
    assert field.tag == "field" and [row.tag for row in rows] == ["order", "order"]
    assert [(c.tag, c.text) for c in field] == [
        ("ordernumber", "OrderNumber"),
        ("status", "Status"),
        ("response_code", "Response_Code"),
    ]
    assert [[c.text or "" for c in row] for row in rows] == [
        ["ORD-1", "Paid", "AS000"],
        ["ORD-<2>", "Not Authorized", "AS100"],
    ]
    assert "<ordernumber>ORD-&lt;2&gt;</ordernumber>" in answer.text


def test_results_xml_refusal_is_an_error_line(client):
    answer = results(client, Format="4", Password="wrong")
    assert answer.text == "ERROR: Authentication error"


def test_results_filters(client, sandbox_app):
    paid_order(client, sandbox_app, "ORD-1")
    pay(client, "ORD-2", card="4000000000002479")
    open_form(client, "ORD-3")  # opened only: Uniteller does not know it yet

    def numbers(**params):
        answer = results(client, S_FIELDS="OrderNumber", **params)
        return answer.text.split()

    assert numbers() == ["ORD-1", "ORD-2"]
    assert numbers(Success="1") == ["ORD-1"]
    assert numbers(Success="0") == ["ORD-2"]
    assert numbers(ShopOrderNumber="ORD-2") == ["ORD-2"]
    today = sandbox(sandbox_app).today()
    period = {
        "StartDay": today.day,
        "StartMonth": today.month,
        "StartYear": today.year,
        "EndDay": today.day,
        "EndMonth": today.month,
        "EndYear": today.year,
    }
    assert numbers(**period) == ["ORD-1", "ORD-2"]
    past = {**period, "StartYear": today.year - 1, "EndYear": today.year - 1}
    assert numbers(**past) == []


def test_results_refund_rows(client, sandbox_app):
    order = paid_order(client, sandbox_app)
    unblock(client, order["bill_number"], Subtotal_P="30.00")
    answer = results(client, PaymentsResults="3", S_FIELDS="OrderNumber;Status;Total")
    assert answer.text == "ORD-1;Paid;100.00\r\nORD-1;Refund;30.00\r\n"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"Password": "wrong"}, "ERROR: Authentication error"),
        ({"Login": "9"}, "ERROR: Authentication error"),
        ({"Shop_ID": "unknown"}, "ERROR: Authentication error"),
        ({"Password": ""}, "ERROR: Mandatory parameter Password"),
        ({"Format": "2"}, "ERROR: Format 2 is not supported"),
        ({"S_FIELDS": "OrderNumber;Bogus"}, "ERROR: Unknown field Bogus in S_FIELDS"),
        ({"Success": "5"}, "ERROR: Success must be one of"),
        ({"Format": None}, "ERROR: Mandatory parameter Format"),
        ({"Format": "7"}, "ERROR: Format must be a number from 1 to 5"),
        ({"ShopOrderNumber": ""}, "ERROR: ShopOrderNumber must not be empty"),
        # Names are exact: a wrong case or a callback-only field is an error.
        ({"S_FIELDS": "OrderNumber;billnumber"}, "ERROR: Unknown field billnumber"),
        ({"S_FIELDS": "OrderNumber;Balance"}, "ERROR: Unknown field Balance"),
        ({"S_FIELDS": "ECI"}, "ERROR: Unknown field ECI"),
        ({"S_FIELDS": "Customer_IDP"}, "ERROR: Unknown field Customer_IDP"),
        (
            {"StartDay": "1", "StartMonth": "1"},
            "ERROR: You need to specify StartYear, StartMonth and StartDay"
            " to set StartDate.",
        ),
        (
            {"StartDay": "1", "StartMonth": "1", "StartYear": "2026"},
            "ERROR: You need to specify EndYear, EndMonth and EndDay to set EndDate.",
        ),
        (
            {"EndDay": "1", "EndMonth": "1", "EndYear": "2026"},
            "ERROR: You need to specify StartYear, StartMonth and StartDay"
            " to set StartDate.",
        ),
        (
            {
                "StartDay": "1",
                "StartMonth": "1",
                "StartYear": "2026",
                "EndDay": "2",
                "EndMonth": "1",
                "EndYear": "2026",
                "EndHour": "10",
            },
            "ERROR: You need to specify EndYear, EndMonth, EndDay, EndHour and EndMin"
            " to set EndDate with time.",
        ),
        (
            {
                "StartDay": "1",
                "StartYear": "2026",
                "StartHour": "10",
                "StartMin": "0",
                "EndDay": "2",
                "EndMonth": "1",
                "EndYear": "2026",
            },
            "ERROR: You need to specify StartYear, StartMonth, StartDay, StartHour"
            " and StartMin to set StartDate with time.",
        ),
        (
            {
                "StartDay": "1",
                "StartMonth": "1",
                "StartYear": "2026",
                "EndDay": "8",
                "EndMonth": "1",
                "EndYear": "2026",
            },
            "ERROR: The period must not exceed 7",
        ),
        (
            {
                "StartDay": "1",
                "StartMonth": "1",
                "StartYear": "2026",
                "StartMin": "5",
                "EndDay": "2",
                "EndMonth": "1",
                "EndYear": "2026",
            },
            "ERROR: You need to specify StartYear, StartMonth, StartDay, StartHour"
            " and StartMin to set StartDate with time.",
        ),
        (
            {
                "StartDay": "31",
                "StartMonth": "2",
                "StartYear": "2026",
                "EndDay": "2",
                "EndMonth": "3",
                "EndYear": "2026",
            },
            "ERROR: Bad Start date",
        ),
    ],
)
def test_results_errors(client, params, error):
    answer = results(client, **params)
    assert answer.status_code == 200
    assert answer.text.startswith(error), answer.text


def test_results_period_of_seven_days_with_hours_is_fine(client):
    answer = results(
        client,
        StartDay="1",
        StartMonth="1",
        StartYear="2026",
        StartHour="10",
        StartMin="30",
        EndDay="8",
        EndMonth="1",
        EndYear="2026",
        EndHour="10",
        EndMin="29",
    )
    assert answer.status_code == 200 and answer.text == ""


def test_results_early_request_is_held_until_its_turn(make_sandbox):
    # v1.43 §4.6.3: one request per 5 s; a sooner one is tried for up to 100 s.
    app = make_sandbox(SANDBOX_RESULTS_INTERVAL=0.3, SANDBOX_RESULTS_HOLD_SECONDS=5000)
    client = app.test_client()
    started = time.monotonic()
    assert results(client).status_code == 200
    second = results(client)
    assert second.status_code == 200 and second.text == ""
    assert time.monotonic() - started >= 0.3


def test_results_request_whose_turn_does_not_come_is_429_after_the_hold(
    make_sandbox,
):
    app = make_sandbox(SANDBOX_RESULTS_INTERVAL=60, SANDBOX_RESULTS_HOLD_SECONDS=200)
    client = app.test_client()
    assert results(client).status_code == 200
    started = time.monotonic()
    refused = results(client)
    assert refused.status_code == 429 and refused.text == "Too Many Connections"
    # Held the whole hold (200 s at the tests' time scale of 0.001) first.
    assert time.monotonic() - started >= 0.2


def test_results_pacing_is_per_shop_and_client_ip(make_sandbox):
    app = make_sandbox(SANDBOX_RESULTS_INTERVAL=60, SANDBOX_RESULTS_HOLD_SECONDS=0)
    add_shop(app, "00000002", password="other", login="2")
    client = app.test_client()
    assert results(client).status_code == 200
    assert results(client).status_code == 429
    other_ip = {"REMOTE_ADDR": "10.0.0.2"}
    assert results(client, environ_base=other_ip).status_code == 200
    assert results(client, environ_base=other_ip).status_code == 429
    other_shop = results(client, Shop_ID="00000002", Login="2", Password="other")
    assert other_shop.status_code == 200


def pacer_turns(pacer, requests_):
    """Start requests (order id or None) on a pacer; return entered/release events."""
    entered = [threading.Event() for _ in requests_]
    release = threading.Event()
    refused = []

    def one(index, order_id):
        try:
            with pacer.turn(SHOP_ID, "127.0.0.1", order_id):
                entered[index].set()
                release.wait(10)
        except TooManyRequests:
            refused.append(index)

    threads = [
        threading.Thread(target=one, args=(index, order_id))
        for index, order_id in enumerate(requests_)
    ]
    for thread in threads:
        thread.start()
    return entered, release, refused, threads


def test_at_most_one_period_query_at_once_per_shop_and_ip():
    pacer = ResultsPacer(interval=0, hold=10)
    entered, release, refused, threads = pacer_turns(pacer, [None])
    assert entered[0].wait(5)
    second, release_second, _, more = pacer_turns(pacer, [None])
    assert not second[0].wait(0.2)  # held while the first runs
    release.set()
    assert second[0].wait(5)
    release_second.set()
    for thread in threads + more:
        thread.join(5)
    assert refused == []


def test_at_most_five_queries_at_once_about_one_order():
    pacer = ResultsPacer(interval=0, hold=10)
    entered, release, refused, threads = pacer_turns(pacer, ["ORD-1"] * 6)
    assert all(event.wait(5) for event in entered[:5])
    assert not entered[5].wait(0.2)
    # Another order is not held by them.
    other, release_other, _, more = pacer_turns(pacer, ["ORD-2"])
    assert other[0].wait(5)
    release.set()
    release_other.set()
    assert entered[5].wait(5)
    for thread in threads + more:
        thread.join(5)
    assert refused == []


def test_a_held_request_refused_after_the_hold_frees_its_place():
    pacer = ResultsPacer(interval=0, hold=0.1)
    entered, release, refused, threads = pacer_turns(pacer, [None])
    assert entered[0].wait(5)
    late, _, late_refused, late_threads = pacer_turns(pacer, [None])
    for thread in late_threads:
        thread.join(5)
    assert late_refused == [0] and not late[0].is_set()
    release.set()
    for thread in threads:
        thread.join(5)
    after, release_after, _, last = pacer_turns(pacer, [None])
    assert after[0].wait(5)
    release_after.set()
    for thread in last:
        thread.join(5)


# -- /recurrent/ --


def recurrent(
    client,
    order_id="REC-1",
    subtotal="100.00",
    parent="ORD-1",
    password=PASSWORD,
    **extra,
):
    """Send a signed /recurrent/ request."""
    fields = {
        "Shop_IDP": SHOP_ID,
        "Order_IDP": order_id,
        "Subtotal_P": subtotal,
        "Parent_Order_IDP": parent,
        **extra,
    }
    fields["Signature"] = recurrent_signature(
        SHOP_ID,
        order_id,
        subtotal,
        parent,
        password,
        parent_shop_id=extra.get("Parent_Shop_IDP"),
    )
    return client.post("/recurrent/", data=fields)


def parse_recurrent(answer) -> dict:
    """Parse a successful-shape /recurrent/ answer into a dict."""
    header, values, end = answer.text.split("\r\n")
    assert header == RECURRENT_HEADER and end == ""
    return dict(zip(header.split(";"), values.split(";"), strict=True))


@pytest.fixture
def parent(client, sandbox_app, merchant):
    """A paid order marked IsRecurrentStart; callbacks so far forgotten."""
    order = paid_order(client, sandbox_app, IsRecurrentStart="1")
    merchant.callbacks.clear()
    return order


def test_recurrent_success(client, sandbox_app, merchant, parent):
    answer = parse_recurrent(recurrent(client, "REC-1", "250.00"))
    assert answer["OrderNumber"] == "REC-1" and answer["Response_Code"] == "AS000"
    assert answer["Total"] == "250.00" and answer["Status"] == "Authorized"
    assert answer["CardNumber"] == "400000******2487"
    assert re.fullmatch(r"\d{12}", answer["BillNumber"])
    assert answer["Signature"] == md5_upper("REC-1" + "250.00" + PASSWORD)
    assert wait_idle(sandbox_app)
    assert merchant.statuses() == ["authorized", "paid"]
    assert merchant.callbacks[0]["form"]["Total"] == "250.00"
    row = result_row(client, "REC-1", "OrderNumber;Status;parent_order_number")
    assert row == ["REC-1", "Paid", "ORD-1"]


def test_recurrent_with_parent_shop(client, sandbox_app, parent):
    add_shop(sandbox_app, "00000002", password="other", login="2")
    fields = {
        "Shop_IDP": "00000002",
        "Parent_Shop_IDP": SHOP_ID,
        "Order_IDP": "R",
        "Subtotal_P": "10.00",
        "Parent_Order_IDP": "ORD-1",
    }
    fields["Signature"] = recurrent_signature(
        "00000002", "R", "10.00", "ORD-1", "other", parent_shop_id=SHOP_ID
    )
    answer = client.post("/recurrent", data=fields)
    assert answer.text.split("\r\n")[1].split(";")[1] == "AS000"


@pytest.mark.parametrize(
    ("case", "code", "text"),
    [
        (
            "missing",
            3,
            "Mandatory parameter 'Subtotal_P' is not present in the request",
        ),
        ("signature", 2, "Invalid signature"),
        ("format", 5, "Field Subtotal_P has bad format"),
        ("failed", 15, "The operation failed"),
        ("forbidden", 22, "Recurrent payment not allowed"),
        ("unknown parent", 23, "Incorrect Parent_Order_IDP"),
        ("failed parent", 23, "Incorrect Parent_Order_IDP"),
        ("exists", 24, "Order_IDP already exists"),
        ("shop", 25, "Shop_IDP not found"),
        ("not a start", 26, "Parent_Order_IDP must be marked as IsRecurrentStart"),
    ],
)
def test_recurrent_errors(client, sandbox_app, parent, case, code, text):
    paid_order(client, sandbox_app, "PLAIN")
    pay(client, "DECLINED", card="4000000000002479", IsRecurrentStart="1")
    if case == "missing":
        answer = client.post(
            "/recurrent/",
            data={
                "Shop_IDP": SHOP_ID,
                "Order_IDP": "R",
                "Signature": "x",
                "Parent_Order_IDP": "ORD-1",
            },
        )
    elif case == "signature":
        answer = recurrent(client, password="wrong")
    elif case == "format":
        answer = recurrent(client, subtotal="1,00")
    elif case == "failed":
        set_faults(client, operation_failed=True)
        answer = recurrent(client)
    elif case == "forbidden":
        add_shop(
            sandbox_app,
            SHOP_ID,
            password=PASSWORD,
            login=LOGIN,
            recurrent_allowed=False,
        )
        answer = recurrent(client)
    elif case == "unknown parent":
        answer = recurrent(client, parent="NOPE")
    elif case == "failed parent":
        answer = recurrent(client, parent="DECLINED")
    elif case == "exists":
        answer = recurrent(client, order_id="ORD-1")
    elif case == "shop":
        answer = client.post(
            "/recurrent/",
            data={
                "Shop_IDP": "nope",
                "Order_IDP": "R",
                "Subtotal_P": "1.00",
                "Parent_Order_IDP": "ORD-1",
                "Signature": "x",
            },
        )
    else:
        answer = recurrent(client, parent="PLAIN")
    assert answer.text == f"ErrorCode;ErrorMessage\r\n{code};{text}\r\n"


def md5_joined(values) -> str:
    """Return UPPER(md5(md5(v1) & md5(v2) & ...)), apart from the sandbox's code."""
    inner = "&".join(hashlib.md5(v.encode()).hexdigest() for v in values)
    return md5_upper(inner)


def recurrent_fields(order_id="REC-1", subtotal="100.00", parent="ORD-1", **extra):
    """Return an unsigned /recurrent/ request."""
    return {
        "Shop_IDP": SHOP_ID,
        "Order_IDP": order_id,
        "Subtotal_P": subtotal,
        "Parent_Order_IDP": parent,
        **extra,
    }


def test_recurrent_type_is_signed_after_the_parent_order(client, parent):
    fields = recurrent_fields(RecurrentType="2")
    fields["Signature"] = md5_joined(
        [SHOP_ID, "REC-1", "100.00", "ORD-1", "2", PASSWORD]
    )
    answer = parse_recurrent(client.post("/recurrent/", data=fields))
    assert answer["Response_Code"] == "AS000"


@pytest.mark.parametrize(
    ("extra", "signed", "text"),
    [
        # Sent, but left out of the signature (v1.43 Table 13: it takes part).
        ({"RecurrentType": "1"}, [], "2;Invalid signature"),
        ({"RecurrentType": "4"}, ["4"], "5;Field RecurrentType has bad format"),
        ({"Order_IDP": "  "}, [], "5;Field Order_IDP has bad format"),
    ],
)
def test_recurrent_refusals(client, parent, extra, signed, text):
    fields = recurrent_fields(**extra)
    fields["Signature"] = md5_joined(
        [SHOP_ID, fields["Order_IDP"], "100.00", "ORD-1", *signed, PASSWORD]
    )
    answer = client.post("/recurrent/", data=fields)
    assert answer.text == f"ErrorCode;ErrorMessage\r\n{text}\r\n"
    assert sandbox(client.application).attempts_of(SHOP_ID, "REC-1") == []


def test_recurrent_lower_case_signature_is_invalid(client, parent):
    fields = recurrent_fields()
    fields["Signature"] = md5_joined(
        [SHOP_ID, "REC-1", "100.00", "ORD-1", PASSWORD]
    ).lower()
    answer = client.post("/recurrent/", data=fields)
    assert answer.text == "ErrorCode;ErrorMessage\r\n2;Invalid signature\r\n"
    fields["Signature"] = fields["Signature"].upper()
    assert parse_recurrent(client.post("/recurrent/", data=fields))["Status"]


def test_recurrent_with_callback_format_json(client, sandbox_app, merchant, parent):
    answer = recurrent(client, CallbackFormat="json")
    assert parse_recurrent(answer)["Response_Code"] == "AS000"
    assert wait_idle(sandbox_app)
    assert [c["json"]["Status"] for c in merchant.callbacks] == ["authorized", "paid"]


def test_recurrent_declines_and_daily_cap(client, sandbox_app, merchant, parent):
    first = parse_recurrent(recurrent(client, "REC-1", "1500.00"))
    assert (first["Response_Code"], first["Status"]) == ("AS102", "Not Authorized")
    assert first["Signature"] == md5_upper("REC-1" + "1500.00" + PASSWORD)
    second = parse_recurrent(recurrent(client, "REC-2", "2500.00"))
    assert second["Response_Code"] == "AS100"
    third = parse_recurrent(recurrent(client, "REC-3", "100.00"))
    assert third["Response_Code"] == "AS109"
    assert wait_idle(sandbox_app)
    assert merchant.callbacks == []
    for order_id, code in (("REC-1", "AS102"), ("REC-3", "AS109")):
        assert result_row(client, order_id) == [order_id, "Not Authorized", code]
    # A failed Order_IDP reached Uniteller: it cannot be reused.
    assert recurrent(client, "REC-1").text.startswith("ErrorCode;ErrorMessage\r\n24;")


@pytest.mark.parametrize(
    ("action", "code", "message"),
    [("expire-card", "AS104", "срок действия"), ("block-card", "AS998", "F01")],
)
def test_recurrent_hard_declines(client, parent, action, code, message):
    answer = client.post(f"/_sandbox/orders/ORD-1/{action}")
    assert answer.status_code == 200
    result = parse_recurrent(recurrent(client))
    assert result["Response_Code"] == code and message in result["Message"]


def test_mark_card_of_unknown_order_is_404(client):
    assert client.post("/_sandbox/orders/NOPE/expire-card").status_code == 404


def test_recurrent_delayed_band_answers_28_then_succeeds(client, sandbox_app, parent):
    answer = recurrent(client, "REC-D", "4500.00")
    assert answer.text == "ErrorCode;ErrorMessage\r\n28;Payment result not received\r\n"
    assert wait_idle(sandbox_app)
    assert result_row(client, "REC-D") == ["REC-D", "Paid", "AS000"]


# -- /unblock/ and /confirm/ --


def unblock(client, bill, **params):
    """Send /unblock/ with the shop's credentials."""
    data = {
        "Billnumber": bill,
        "Shop_ID": SHOP_ID,
        "Login": LOGIN,
        "Password": PASSWORD,
        **params,
    }
    return client.post("/unblock/", data=data)


def confirm(client, bill, **params):
    """Send /confirm/ with the shop's credentials."""
    data = {
        "Billnumber": bill,
        "Shop_ID": SHOP_ID,
        "Login": LOGIN,
        "Password": PASSWORD,
        **params,
    }
    return client.post("/confirm/", data=data)


def answer_row(answer) -> dict:
    """Parse a CSV answer with a header line into a dict."""
    header, values, end = answer.text.split("\r\n")
    assert end == "", answer.text
    return dict(zip(header.split(";"), values.split(";"), strict=True))


def test_unblock_full_refund(client, sandbox_app, merchant):
    order = paid_order(client, sandbox_app)
    answer = unblock(client, order["bill_number"])
    row = answer_row(answer)
    assert answer.text.split("\r\n")[0] + ";Signature" == RECURRENT_HEADER
    assert row["Status"] == "Canceled" and row["BillNumber"] == order["bill_number"]
    assert wait_idle(sandbox_app)
    assert merchant.statuses() == ["authorized", "paid", "canceled"]
    again = unblock(client, order["bill_number"])
    expected = "ErrorCode;ErrorMessage\r\n16;The order has already been cancelled\r\n"
    assert again.text == expected
    assert result_row(client, "ORD-1", "Status;Total") == ["Canceled", "100.00"]


def test_unblock_partial_then_over_refund(client, sandbox_app, merchant):
    order = paid_order(client, sandbox_app)
    answer = unblock(
        client,
        order["bill_number"],
        Subtotal_P="40.00",
        S_FIELDS="OrderNumber;Status;Total",
    )
    assert answer.text == "OrderNumber;Status;Total\r\nORD-1;Paid;100.00\r\n"
    over = unblock(client, order["bill_number"], Subtotal_P="60.01")
    assert over.text.startswith("ErrorCode;ErrorMessage\r\n5;")
    assert "exceeds the refundable balance 60.00" in over.text
    rest = answer_row(unblock(client, order["bill_number"], Subtotal_P="60.00"))
    assert rest["Status"] == "Canceled"
    assert wait_idle(sandbox_app)
    # A partial refund is notified too (v1.43 §4.6.1.1), with the order's status.
    assert merchant.statuses() == ["authorized", "paid", "paid", "canceled"]
    partial = merchant.callbacks[2]["form"]
    assert partial["Total"] == "100.00"
    assert partial["Signature"] == md5_upper(
        "ORD-1paid"
        + partial["BillNumber"]
        + partial["ApprovalCode"]
        + "100.00"
        + PASSWORD
    )


def test_partial_refund_callback_says_partly_canceled_if_the_shop_asks(
    client, sandbox_app, merchant
):
    add_shop(
        sandbox_app,
        SHOP_ID,
        password=PASSWORD,
        login=LOGIN,
        notify_url=merchant.url + "/notify",
        callback_fields="BillNumber ApprovalCode Total",
        notify_balance=True,
    )
    order = paid_order(client, sandbox_app)
    unblock(client, order["bill_number"], Subtotal_P="40.00")
    unblock(client, order["bill_number"])
    assert wait_idle(sandbox_app)
    assert merchant.statuses() == ["authorized", "paid", "partly canceled", "canceled"]


def test_refund_rows_have_their_own_bill_number_amount_and_date(client, sandbox_app):
    order = paid_order(client, sandbox_app)
    unblock(client, order["bill_number"], Subtotal_P="30.00")
    unblock(client, order["bill_number"], Subtotal_P="20.00")
    answer = results(
        client, PaymentsResults="3", S_FIELDS="Status;Total;BillNumber;PacketDate"
    )
    rows = [line.split(";") for line in answer.text.split("\r\n")[:-1]]
    assert [row[:2] for row in rows] == [
        ["Paid", "100.00"],
        ["Refund", "30.00"],
        ["Refund", "20.00"],
    ]
    bills = [row[2] for row in rows]
    assert bills[0] == order["bill_number"] and len(set(bills)) == 3
    assert all(re.fullmatch(r"\d{12}", bill) for bill in bills)


def test_show_partly_canceled(client, sandbox_app):
    order = paid_order(client, sandbox_app)
    unblock(client, order["bill_number"], Subtotal_P="30.00")
    assert result_row(client, "ORD-1", "Status") == ["Paid"]
    answer = results(client, ShowPartlyCanceled="1", S_FIELDS="Status")
    assert answer.text == "Partly canceled\r\n"


def test_status_spellings_callbacks_lower_case_results_capitalised(
    make_sandbox, merchant
):
    # v1.43 §4.6.1.1 note 13: lower case in callbacks, capitalised in /results/.
    app = make_sandbox(SANDBOX_DELAYED_SUCCESS_SECONDS=100_000)
    client = app.test_client()
    paid_order(client, app, "PAID")
    paid_order(client, app, "HELD", Preauth="1")
    refunded = paid_order(client, app, "REFUNDED")
    unblock(client, refunded["bill_number"], Subtotal_P="10.00")
    unblock(client, refunded["bill_number"])
    pay(client, "DECLINED", card="4000000000002479")
    pay(client, "WAITING", "4000.00")
    rows = results(client, PaymentsResults="3", S_FIELDS="OrderNumber;Status").text
    assert rows.split("\r\n")[:-1] == [
        "PAID;Paid",
        "HELD;Authorized",
        "REFUNDED;Canceled",
        "REFUNDED;Refund",
        "REFUNDED;Refund",
        "DECLINED;Not Authorized",
        "WAITING;Waiting",
    ]
    sent = sandbox(app).store.all("SELECT DISTINCT status FROM callbacks")
    assert {row["status"] for row in sent} == {"authorized", "paid", "canceled"}


def test_unblock_answers_xml_with_format_3(client, sandbox_app):
    order = paid_order(client, sandbox_app)
    answer = unblock(
        client, order["bill_number"], Format="3", S_FIELDS="OrderNumber;Status"
    )
    assert answer.mimetype == "text/xml"
    assert answer.text.startswith(
        '<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n'
        "<!DOCTYPE unitellerresult ["
    )
    assert answer.text.endswith(
        '<unitellerresult firstcode="" secondcode="" count="1">'
        "<orders><order><ordernumber>ORD-1</ordernumber>"
        "<status>Canceled</status></order></orders></unitellerresult>"
    )
    root = ElementTree.fromstring(answer.text.encode())
    assert root.attrib == {"firstcode": "", "secondcode": "", "count": "1"}


@pytest.mark.parametrize(
    ("params", "code", "text"),
    [
        ({"Password": "wrong"}, "1", "Authentication error"),
        ({"Billnumber": "000000000000"}, "4", "Bill not found"),
        (
            {"S_FIELDS": "Status;Balance"},
            "10",
            "S_FIELDS contains field 'Balance' which is not allowed",
        ),
    ],
)
def test_unblock_refuses_in_xml_with_format_3(client, sandbox_app, params, code, text):
    order = paid_order(client, sandbox_app)
    answer = unblock(client, order["bill_number"], Format="3", **params)
    assert answer.mimetype == "text/xml"
    assert answer.text.endswith(
        f'<unitellerresult firstcode="{code}" secondcode="{text}" count="0">'
        "<orders></orders></unitellerresult>"
    )
    root = ElementTree.fromstring(answer.text.encode())
    assert root.attrib == {"firstcode": code, "secondcode": text, "count": "0"}
    assert sandbox(sandbox_app).order(order["id"])["status"] == "paid"


def test_unblock_reverses_a_block(client, sandbox_app, merchant):
    order = paid_order(client, sandbox_app, Preauth="1")
    assert answer_row(unblock(client, order["bill_number"]))["Status"] == "Canceled"
    assert wait_idle(sandbox_app)
    assert merchant.statuses() == ["authorized", "canceled"]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", 3),
        ("login", 1),
        ("bill", 4),
        ("format", 5),
        ("fields", 10),
        ("failed", 15),
        ("declined", 17),
        ("partial", 35),
    ],
)
def test_unblock_errors(client, sandbox_app, case, code):
    order = paid_order(client, sandbox_app)
    pay(client, "ORD-2", card="4000000000002479")
    bill = order["bill_number"]
    if case == "missing":
        answer = client.post("/unblock/", data={"Billnumber": bill, "Shop_ID": SHOP_ID})
    elif case == "login":
        answer = unblock(client, bill, Password="wrong")
    elif case == "bill":
        answer = unblock(client, "000000000000")
    elif case == "format":
        answer = unblock(client, bill, Subtotal_P="ten")
    elif case == "fields":
        answer = unblock(client, bill, S_FIELDS="OrderNumber;Nope")
    elif case == "failed":
        set_faults(client, operation_failed=True)
        answer = unblock(client, bill)
    elif case == "declined":
        sandbox(sandbox_app).store.run(
            "UPDATE orders SET bill_number = '111111111111' WHERE order_id = 'ORD-2'"
        )
        answer = unblock(client, "111111111111")
    else:
        add_shop(
            sandbox_app,
            SHOP_ID,
            password=PASSWORD,
            login=LOGIN,
            partial_refund_allowed=False,
        )
        answer = unblock(client, bill, Subtotal_P="1.00")
    assert answer.text.startswith(f"ErrorCode;ErrorMessage\r\n{code};")
    assert sandbox(sandbox_app).attempts_of(SHOP_ID, "ORD-1")[0]["status"] == "paid"


def test_confirm_captures_a_preauthorization(client, sandbox_app, merchant):
    order = paid_order(client, sandbox_app, Preauth="1")
    answer = confirm(client, order["bill_number"], Subtotal_P="80.00")
    row = answer_row(answer)
    assert (row["Status"], row["Total"]) == ("Paid", "80.00")
    assert wait_idle(sandbox_app)
    assert merchant.statuses() == ["authorized", "paid"]
    assert merchant.callbacks[1]["form"]["Total"] == "80.00"
    again = confirm(client, order["bill_number"])
    assert again.text == (
        "ErrorCode;ErrorMessage\r\n18;Authorization confirm is not allowed\r\n"
    )


def test_confirm_errors(client, sandbox_app):
    plain = paid_order(client, sandbox_app, "PLAIN")
    assert confirm(client, plain["bill_number"]).text.split("\r\n")[1].startswith("18;")
    held = paid_order(client, sandbox_app, "HELD", Preauth="1")
    too_big = confirm(client, held["bill_number"], Subtotal_P="100.01")
    assert too_big.text.split("\r\n")[1].startswith("5;")
    sandbox(sandbox_app).store.run(
        "UPDATE orders SET authorized_at = authorized_at - 6 * 86400 WHERE id = ?",
        (held["id"],),
    )
    late = confirm(client, held["bill_number"])
    assert late.text.split("\r\n")[1] == "19;Authorization confirm is too late"


# -- faults, control API, operator view, CLI, helpers --


def test_faults_api(client):
    assert client.get("/_sandbox/faults").json["drop_callbacks"] is False
    set_faults(client, drop_callbacks=True, latency_ms=1)
    set_faults(client, callback_http_errors=2)
    current = client.get("/_sandbox/faults").json
    assert current["drop_callbacks"] is True and current["callback_http_errors"] == 2
    bad = client.post("/_sandbox/faults", json={"explode": True})
    assert bad.status_code == 400 and "explode" in bad.json["error"]
    assert client.post("/_sandbox/faults", json={"error_rate": 2}).status_code == 400
    assert client.delete("/_sandbox/faults").json["drop_callbacks"] is False


def test_error_rate_is_seeded_and_latency_applies(client):
    def draws():
        set_faults(client, error_rate=0.5, seed=7, latency_ms=1)
        return [results(client).status_code for _ in range(12)]

    first = draws()
    assert set(first) == {200, 500}
    assert draws() == first
    # The same seeded draws decide every operation: the 25th of seed 7 is an error.
    assert client.post("/unblock/").status_code == 500
    set_faults(client, error_rate=0.5, seed=7, latency_ms=1)
    assert [results(client).status_code for _ in range(12)] == first


def test_ping(client):
    assert client.get("/ping").json == {"status": "pong"}


def test_shops_api_never_shows_passwords(client):
    answer = client.post(
        "/_sandbox/shops",
        json={
            "shop_id": "00000009",
            "password": "hush-hush",
            "login": "9",
            "notify_url": "http://shop.test/cb",
            "callback_fields": "Total",
        },
    )
    assert answer.status_code == 200 and "password" not in answer.json
    listed = client.get("/_sandbox/shops").text
    assert "00000009" in listed and "hush-hush" not in listed
    assert "hush-hush" not in client.get("/").text
    bad = client.post(
        "/_sandbox/shops",
        json={"shop_id": "x", "password": "p", "login": "l", "colour": "red"},
    )
    assert bad.status_code == 400
    no_login = client.post("/_sandbox/shops", json={"shop_id": "x", "password": "p"})
    assert no_login.status_code == 400


def test_operator_view_lists_orders_and_callbacks(client, sandbox_app):
    paid_order(client, sandbox_app)
    page = client.get("/_sandbox/").text
    assert "ORD-1" in page and "paid" in page and "delivered" in page
    orders = client.get("/_sandbox/orders?order_id=ORD-1").json
    assert [c["status"] for c in orders[0]["callbacks"]] == ["authorized", "paid"]


def test_cli_adds_and_lists_shops(sandbox_app):
    runner = sandbox_app.test_cli_runner()
    added = runner.invoke(
        args=[
            "shop",
            "add",
            "00000005",
            "--password",
            "cli-secret",
            "--login",
            "5",
            "--notify-url",
            "http://shop.test/cb",
            "--callback-fields",
            "BillNumber Total",
        ]
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(args=["shop", "list"])
    assert "00000005" in listed.output and "BillNumber Total" in listed.output
    assert "cli-secret" not in listed.output
    bad = runner.invoke(
        args=[
            "shop",
            "add",
            "6",
            "--password",
            "p",
            "--login",
            "6",
            "--callback-fields",
            "Bogus",
        ]
    )
    assert bad.exit_code != 0


def test_shops_file_is_loaded(tmp_path):
    path = tmp_path / "shops.json"
    path.write_text(json.dumps([{"shop_id": "7", "password": "p", "login": "l"}]))
    app = create_app(
        {
            "SANDBOX_DATABASE": str(tmp_path / "s.sqlite3"),
            "SANDBOX_SHOPS_FILE": str(path),
        }
    )
    try:
        assert [shop["shop_id"] for shop in sandbox(app).shops()] == ["7"]
    finally:
        sandbox(app).close()


def test_notify_balance_is_a_shop_setting(sandbox_app):
    client = sandbox_app.test_client()
    answer = client.post(
        "/_sandbox/shops",
        json={
            "shop_id": "00000009",
            "password": "p",
            "login": "9",
            "notify_balance": True,
        },
    )
    assert answer.status_code == 200 and answer.json["notify_balance"] is True
    runner = sandbox_app.test_cli_runner()
    added = runner.invoke(
        args=[
            "shop",
            "add",
            "00000008",
            "--password",
            "p",
            "--login",
            "8",
            "--notify-balance",
        ]
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(args=["shop", "list"]).output
    line = next(line for line in listed.splitlines() if line.startswith("00000008"))
    assert "notify_balance" in line
    plain = next(line for line in listed.splitlines() if line.startswith(SHOP_ID))
    assert "notify_balance" not in plain


def test_a_database_file_of_an_older_sandbox_gets_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(
            "CREATE TABLE shops (shop_id TEXT PRIMARY KEY, password TEXT NOT NULL,"
            " login TEXT NOT NULL, notify_url TEXT NOT NULL DEFAULT '',"
            " status_url TEXT NOT NULL DEFAULT '',"
            " callback_fields TEXT NOT NULL DEFAULT '',"
            " recurrent_allowed INTEGER NOT NULL DEFAULT 1,"
            " partial_refund_allowed INTEGER NOT NULL DEFAULT 1);"
            "INSERT INTO shops (shop_id, password, login) VALUES ('7', 'p', 'l');"
            "CREATE TABLE refunds (id INTEGER PRIMARY KEY, order_row INTEGER NOT NULL,"
            " amount INTEGER NOT NULL, created_at REAL NOT NULL);"
        )
    old.close()
    app = create_app({"SANDBOX_DATABASE": str(path)})
    try:
        assert sandbox(app).shops()[0]["notify_balance"] is False
        columns = sandbox(app).store.all("PRAGMA table_info(refunds)")
        assert "bill_number" in {column["name"] for column in columns}
    finally:
        sandbox(app).close()


def test_sandbox_code_is_independent_of_the_main_app():
    package = Path(__file__).parents[1] / "cabinet" / "uniteller" / "sandbox"
    for path in package.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) cabinet", source, re.M), path


def test_serve_in_thread_serves_the_sandbox(sandbox_app):
    server = serve_in_thread(sandbox_app)
    try:
        assert requests.get(server.url + "/ping", timeout=5).json() == {
            "status": "pong"
        }
    finally:
        server.shutdown()
    assert Path(sandbox_app.config["SANDBOX_DATABASE"]).exists()
