"""The sandbox's fiscal endpoints ("Платежи с фискализацией" 02.1.18), over HTTP.

The sandbox and a recording shop are served live; the signatures the tests send
and check are computed here from the specification's formulas, apart from the
sandbox's code (only the /pay/ Signature, tested in test_sandbox.py, is its).
"""

import base64
import hashlib
import json
import re
import sqlite3
import threading
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cabinet.uniteller.sandbox import add_shop, create_app, wait_idle
from cabinet.uniteller.sandbox.signatures import (
    cancel_signature,
    fiscal_callback_signature,
    fiscal_receipt_signature,
    pay_signature,
    receipt_signature,
)
from cabinet.uniteller.sandbox.testing import serve_in_thread
from tests.helpers import RecordingShop

SHOP_ID = "00000001"
LOGIN = "1001"
PASSWORD = "secret"
CARD = "4000000000002487"
DECLINE_CARD = "4000000000002479"
LINE = "Пополнение лицевого счёта № 1001"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sign_receipt(shop_id, order_id, subtotal, receipt, password=PASSWORD) -> str:
    """ReceiptSignature of /v2/pay and /v2/recurrent, written from §3.1."""
    parts = [shop_id, order_id, subtotal, receipt, password]
    return sha256("&".join(sha256(part) for part in parts)).upper()


def sign_cancel(fields: dict, password=PASSWORD) -> str:
    """Signature of /v2/cancel (§3.14): a field not sent drops out with its `&`."""
    names = ("OrderID", "UPID", "Subtotal", "Receipt")
    parts = [fields[name] for name in names if name in fields] + [password]
    return sha256("&".join(sha256(part) for part in parts)).upper()


def receipt(amount="100.00", **changes) -> dict:
    """An ISP's top-up receipt as the cabinet builds it (types as Appendix 9 says)."""
    value = Decimal(amount)
    body = {
        "customer": {"email": "ivan@example.com", "id": "1001"},
        "taxmode": 1,
        "lines": [
            {
                "name": LINE,
                "price": value,
                "qty": 1,
                "sum": value,
                "vat": -1,
                "payattr": 3,
                "lineattr": 10,
            }
        ],
        "payments": [{"kind": 1, "type": 0, "amount": value}],
        "total": value,
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def encode(body) -> str:
    """Base64 of the UTF-8 JSON, the way Receipt travels; str bodies as they are."""
    text = body if isinstance(body, str) else json.dumps(body, default=_number)
    return base64.b64encode(text.encode()).decode()


def _number(value):
    if isinstance(value, Decimal):
        return float(value) if value % 1 else int(value)
    raise TypeError(value)


def decode_array(text: str) -> list:
    """Read a Receipt field of an answer or notification: a JSON array."""
    return json.loads(base64.b64decode(text)) if text else []


class Sandbox:
    """The sandbox served live, with its app, base URL and the recording shop."""

    def __init__(self, app, url, shop):
        self.app = app
        self.url = url
        self.shop = shop
        self.http = requests.Session()

    def post(self, path, data, **kwargs):
        return self.http.post(self.url + path, data=data, timeout=10, **kwargs)

    def faults(self, **faults):
        answer = self.http.post(self.url + "/_sandbox/faults", json=faults, timeout=5)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def idle(self):
        assert wait_idle(self.app), "sandbox still busy"

    def set_shop(self, **settings):
        fields = {
            "password": PASSWORD,
            "login": LOGIN,
            "notify_url": self.shop.url + "/notify",
            "status_url": "",
            "callback_fields": "Total BillNumber ApprovalCode",
            "fiscal": True,
            "fiscal_notify_url": self.shop.url + "/fiscal",
            **settings,
        }
        add_shop(self.app, SHOP_ID, **fields)

    # -- the payment page -------------------------------------------------------

    def pay_fields(self, order_id="ORD-1", subtotal="100.00", body=None, **extra):
        """A signed /v2/pay request; extra=None drops a field."""
        text = encode(receipt(subtotal) if body is None else body)
        fields = {
            "Shop_IDP": SHOP_ID,
            "Order_IDP": order_id,
            "Subtotal_P": subtotal,
            "URL_RETURN_OK": "http://shop.test/ok",
            "URL_RETURN_NO": "http://shop.test/no",
            "Receipt": text,
            "ReceiptSignature": sign_receipt(SHOP_ID, order_id, subtotal, text),
            **extra,
        }
        fields = {name: value for name, value in fields.items() if value is not None}
        fields["Signature"] = pay_signature(fields, PASSWORD)
        return fields

    def open_form(self, fields) -> requests.Response:
        return self.post("/v2/pay", fields)

    def pay(self, fields, card=CARD) -> requests.Response:
        """Open the form and pay with a card; return the redirect."""
        page = self.open_form(fields)
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token, page.text
        form = {
            "token": token.group(1),
            "card_number": card,
            "exp_month": "12",
            "exp_year": "35",
            "cvc": "123",
            "holder": "IVAN IVANOV",
        }
        return self.post("/pay/card", form, allow_redirects=False)

    # -- server to server -------------------------------------------------------

    def results(self, order_id, path="/v2/results", **params):
        data = {
            "Shop_ID": SHOP_ID,
            "Login": LOGIN,
            "Password": PASSWORD,
            "Format": "1",
            "ShopOrderNumber": order_id,
            "S_FIELDS": "OrderNumber;Status;Total",
            **params,
        }
        answer = self.post(path, data)
        assert not answer.text.startswith("ERROR"), answer.text
        return [line.split(";") for line in answer.text.split("\r\n") if line]

    def recurrent(self, order_id, subtotal="100.00", parent="ORD-1", body=None, **kw):
        text = encode(receipt(subtotal) if body is None else body)
        signature = md5(
            "&".join(md5(v) for v in (SHOP_ID, order_id, subtotal, parent, PASSWORD))
        ).upper()
        fields = {
            "Shop_IDP": SHOP_ID,
            "Order_IDP": order_id,
            "Subtotal_P": subtotal,
            "Parent_Order_IDP": parent,
            "Signature": signature,
            "Receipt": text,
            "ReceiptSignature": sign_receipt(SHOP_ID, order_id, subtotal, text),
            **kw,
        }
        fields = {name: value for name, value in fields.items() if value is not None}
        answer = self.post("/v2/recurrent", fields)
        header, *rows = [line.split(";") for line in answer.text.split("\r\n") if line]
        return [dict(zip(header, row, strict=True)) for row in rows]

    def cancel(self, order_id="ORD-1", subtotal=None, body=None, **extra):
        fields = {"OrderID": order_id, "UPID": SHOP_ID}
        if subtotal is not None:
            fields["Subtotal"] = subtotal
        if body is not False:
            fields["Receipt"] = encode(
                receipt(subtotal or "100.00") if body is None else body
            )
        fields["Signature"] = sign_cancel(fields)
        fields.update(extra)
        answer = self.post("/v2/cancel", fields)
        assert answer.status_code == 200
        return answer.json()


@pytest.fixture(autouse=True)
def no_threads_left():
    """Fail a test that leaves a sandbox worker or a served app running."""
    yield
    names = [thread.name for thread in threading.enumerate()]
    assert not [n for n in names if n.startswith(("sandbox-worker", "wsgi-"))]


@pytest.fixture
def sandbox(tmp_path):
    """A fiscal shop on the sandbox, both served live."""
    shop = RecordingShop()
    shop_server = serve_in_thread(shop)
    shop.url = shop_server.url
    app = create_app(
        {
            "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
            "SANDBOX_TIME_SCALE": 0.001,
            "SANDBOX_RESULTS_INTERVAL": 0,
            "SANDBOX_STATUS_CHECK_DELAY": 0,
        }
    )
    server = serve_in_thread(app)
    emulator = Sandbox(app, server.url, shop)
    emulator.set_shop()
    yield emulator
    server.shutdown()
    app.extensions["sandbox"].close()
    shop_server.shutdown()


@pytest.fixture
def paid(sandbox):
    """ORD-1 paid through /v2/pay (a recurrent parent), its notifications forgotten."""
    fields = sandbox.pay_fields(IsRecurrentStart="1")
    assert sandbox.pay(fields).headers["Location"].startswith("http://shop.test/ok")
    sandbox.idle()
    sandbox.shop.received.clear()
    return fields


def merchant_error(page) -> str:
    match = re.search(r"<!-- MERCHANT ERROR: (.*?) -->", page.text)
    return match.group(1) if match else ""


# -- signatures ------------------------------------------------------------------


def test_receipt_signature_vector():
    vector = "57A55E9A70FAAC0649027DCE07EF7A6D8273D312D8A0744764C71F69894408F9"
    assert receipt_signature("00000001", "ORD-1", "100.00", "e30=", "secret") == vector
    assert sign_receipt("00000001", "ORD-1", "100.00", "e30=", "secret") == vector


def test_cancel_signature_drops_a_field_not_sent_with_its_ampersand():
    full = {"OrderID": "ORD-1", "UPID": "00000001", "Receipt": "e30="}
    partial = {**full, "Subtotal": "40.00"}
    for fields in (full, partial):
        assert cancel_signature(fields, "secret") == sign_cancel(fields, "secret")
    # Vectors of the formula (from §3.14, for the client's tests too).
    assert cancel_signature(full, "secret") == (
        "BD5F126CD9C37C1D56E3A5CE91E6C76010E29AA6F35AFD47275C5DB12A80D540"
    )
    assert cancel_signature(partial, "secret") == (
        "0C1478E2C41F03990AF640CC46C58C0D1CCBCEE8D4CDAECC7F4125599C27B9C4"
    )


def test_fiscal_notification_signs_approval_bill_total_first():
    # Listed Total first: signed ApprovalCode, BillNumber, Total all the same.
    fields = {"Total": "100.00", "BillNumber": "123456789012", "ApprovalCode": "AB1234"}
    signature = fiscal_callback_signature("ORD-1", "paid", fields, "secret")
    assert signature == "C07B4CCF34055DB1D55F8CD54BBA500D"
    assert signature == md5("ORD-1paidAB1234123456789012100.00secret").upper()
    receipt_vector = "1D31ABD7467022EBE6AD929AA4EE6EE1EB403691878DAD3991B9171D2092FE74"
    assert fiscal_receipt_signature("ORD-1", "paid", "W10=", "secret") == (
        receipt_vector
    )


# -- a sale through the payment page -----------------------------------------------


def check_fiscal_notification(body: dict) -> list:
    """Verify a fiscal notification's two signatures; return its receipts."""
    extra = {name: body[name] for name in ("Total", "BillNumber", "ApprovalCode")}
    fixed = extra["ApprovalCode"] + extra["BillNumber"] + extra["Total"]
    assert (
        body["Signature"]
        == md5(body["Order_ID"] + body["Status"] + fixed + PASSWORD).upper()
    )
    assert (
        body["ReceiptSignature"]
        == sha256(
            body["Order_ID"] + body["Status"] + body["Receipt"] + PASSWORD
        ).upper()
    )
    return decode_array(body["Receipt"])


def test_a_sale_is_fiscalized_notified_and_reported(sandbox):
    fields = sandbox.pay_fields()
    assert (
        sandbox.pay(fields).headers["Location"] == "http://shop.test/ok?Order_ID=ORD-1"
    )
    sandbox.idle()
    # The ordinary callbacks go to the ordinary URL, as without receipts (§1.2.11).
    ordinary = sandbox.shop.posts("/notify")
    assert [body["Status"] for body in ordinary] == ["authorized", "paid"]
    assert "Receipt" not in ordinary[0]
    fiscal = sandbox.shop.posts("/fiscal")
    assert [body["Status"] for body in fiscal] == ["authorized", "paid"]
    # Only the ordinary ones repeat their fields in the query string.
    queries = sandbox.shop.queries
    assert all(query for path, query in queries if path == "/notify")
    assert all(not query for path, query in queries if path == "/fiscal")
    (sold,) = check_fiscal_notification(fiscal[0])
    assert check_fiscal_notification(fiscal[1]) == []  # capture registers nothing
    sent = json.loads(base64.b64decode(fields["Receipt"]))
    # The receipt as sent, with the fiscal block added (Appendix 2).
    assert {k: v for k, v in sold.items() if k != "fiscal"} == sent
    block = sold["fiscal"]
    assert block["type"] == 0 and re.fullmatch(r"\d{20}", block["id"])
    register = block["register"]
    assert register["fiscal_number"] >= 1 and register["shift_index"] >= 1
    assert isinstance(register["fiscal_attr"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", register["fiscal_date"])
    assert set(block["ecr"]) == {"sn", "rn", "fs"} and block["company"]["inn"]
    assert register["fiscal_link"].startswith(sandbox.url + "/receipt?")
    (row,) = sandbox.results("ORD-1")
    assert row[:3] == ["ORD-1", "Paid", "100.00"]
    assert decode_array(row[3]) == [sold]
    # The ordinary results carry no receipts (§1.2.11).
    plain = sandbox.results("ORD-1", "/results/", S_FIELDS="OrderNumber;Receipt")
    assert plain == [["ORD-1", ""]]


def test_the_receipt_page_at_the_fiscal_link(sandbox, paid):
    (row,) = sandbox.results("ORD-1")
    (sold,) = decode_array(row[3])
    link = sold["fiscal"]["register"]["fiscal_link"]
    query = parse_qs(urlsplit(link).query)
    assert query["s"] == ["100.00"] and query["n"] == ["1"]
    page = sandbox.http.get(link, timeout=5)
    assert page.status_code == 200
    assert LINE in page.text and "Итого 100.00" in page.text
    assert "Приход" in page.text and "iv***@example.com" in page.text
    assert "ivan@example.com" not in page.text
    wrong = link.replace(f"fp={query['fp'][0]}", "fp=1")
    assert sandbox.http.get(wrong, timeout=5).status_code == 404


def test_v2_paths_take_a_trailing_slash(sandbox):
    page = sandbox.post("/v2/pay/", sandbox.pay_fields())
    assert 'name="token"' in page.text and not merchant_error(page)


# -- refusals of the payment page ---------------------------------------------------


def with_line(**changes) -> dict:
    body = receipt()
    body["lines"][0].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # 10: the format (Appendix 1, Appendix 9).
        (receipt(total="100.00"), "a quoted number"),
        (with_line(price="100.00"), "a quoted price"),
        (with_line(vat="-1"), "a quoted vat"),
        (receipt(taxmode=3), "an unknown taxmode"),
        (with_line(vat=20), "a vat outside Appendix 4"),
        (with_line(payattr=8), "an unknown payattr"),
        (with_line(lineattr=20), "an unknown lineattr"),
        (with_line(name="Услуга «Интернет»"), "guillemets outside CP866"),
        (with_line(name="Интернет — тариф"), "a dash outside CP866"),
        (with_line(name="x" * 129), "a name over 128 characters"),
        (with_line(name=""), "an empty name"),
        (with_line(qty=0), "qty 0"),
        (with_line(qty=2), "sum is not price × qty"),
        (with_line(payattr=None), "a line without payattr"),
        (receipt(customer={"id": "1001"}), "no e-mail or phone"),
        (receipt(customer={"email": "not an address"}), "a bad e-mail"),
        (receipt(customer={"phone": 79161234567}), "an unquoted customer value"),
        (receipt(total=Decimal("99.00")), "total is not the lines' sum"),
        (receipt(lines=[]), "no lines"),
        (receipt(payments=None), "no payments"),
        (receipt(vat_rate=1), "an unknown key"),
        (receipt(internet=1), "internet 1 without params.place"),
        ("[]", "not a JSON object"),
        ("{not json", "not JSON"),
    ],
)
def test_pay_refuses_a_receipt_of_bad_format(sandbox, body, reason):
    page = sandbox.open_form(sandbox.pay_fields(body=body))
    assert merchant_error(page) == "Field Receipt has invalid format", reason


def test_pay_refuses_a_total_other_than_the_amount(sandbox):
    # total = lines = payments = 90.00, Subtotal_P 100.00: the format (Appendix 9).
    page = sandbox.open_form(sandbox.pay_fields(body=receipt("90.00")))
    assert merchant_error(page) == "Field Receipt has invalid format"


def test_pay_refuses_receipt_text_that_is_not_base64_or_too_long(sandbox):
    fields = sandbox.pay_fields()
    # A "+" not URL-encoded arrives as a space (Appendix 9, cause 4).
    for text in ("e30 =", "A" * 29996 + "e30="):
        changed = dict(fields, Receipt=text)
        changed["ReceiptSignature"] = sign_receipt(SHOP_ID, "ORD-1", "100.00", text)
        page = sandbox.open_form(changed)
        assert merchant_error(page) == "Field Receipt has invalid format"


def test_a_receipt_of_29999_characters_is_taken(sandbox):
    body = receipt(optional={"pad": ""})
    length = len(encode(body))
    body["optional"]["pad"] = "x" * ((29999 - length) // 4 * 3)
    assert 29996 <= len(encode(body)) <= 29999
    page = sandbox.open_form(sandbox.pay_fields(body=body))
    assert not merchant_error(page) and 'name="token"' in page.text


@pytest.mark.parametrize(
    "body",
    [
        receipt(payments=[{"kind": 1, "type": 0, "amount": Decimal("90.00")}]),
        receipt(
            payments=[
                {"kind": 1, "type": 0, "amount": Decimal("60.00")},
                {"kind": 1, "type": 0, "amount": Decimal("60.00")},
            ]
        ),
    ],
)
def test_pay_refuses_payments_other_than_the_lines(sandbox, body):
    page = sandbox.open_form(sandbox.pay_fields(body=body))
    assert merchant_error(page) == "Field Receipt has invalid payments"


def test_pay_refuses_a_shop_without_cash_register(sandbox):
    sandbox.set_shop(fiscal=False)
    page = sandbox.open_form(sandbox.pay_fields())
    assert merchant_error(page) == "Cashbox settings does not set for upoint"


def test_pay_refuses_a_wrong_receipt_signature(sandbox):
    fields = sandbox.pay_fields()
    for signature in (fields["ReceiptSignature"].lower(), "0" * 64, "подпись"):
        page = sandbox.open_form({**fields, "ReceiptSignature": signature})
        assert merchant_error(page) == "Invalid ReceiptSignature"


def test_pay_refuses_agent_blocks_and_merchant_means(sandbox):
    agent = with_line(agent={"agentattr": 32, "suppliername": "ООО Поставщик"})
    page = sandbox.open_form(sandbox.pay_fields(body=agent))
    assert merchant_error(page) == "Field agent in Receipt is disabled"
    dps = receipt(
        payments=[
            {"kind": 1, "type": 0, "amount": Decimal("70.00")},
            {"kind": 4, "type": 1, "amount": Decimal("30.00")},
        ]
    )
    page = sandbox.open_form(sandbox.pay_fields(subtotal="70.00", body=dps))
    assert merchant_error(page) == "Payment type not allowed"


def test_pay_checks_in_the_specs_order(sandbox):
    """Format (10), payments (12), cash register (5), signature (11): §2.1.2."""
    sandbox.set_shop(fiscal=False)
    bad_everything = receipt(taxmode=3, payments=[{"kind": 1, "type": 0, "amount": 1}])
    unsigned = {"ReceiptSignature": "0" * 64}
    cases = [
        (bad_everything, "Field Receipt has invalid format"),
        (
            receipt(payments=[{"kind": 1, "type": 0, "amount": 1}]),
            "Field Receipt has invalid payments",
        ),
        (receipt(), "Cashbox settings does not set for upoint"),
    ]
    for body, reason in cases:
        page = sandbox.open_form({**sandbox.pay_fields(body=body), **unsigned})
        assert merchant_error(page) == reason


def test_pay_requires_receipt_and_its_signature(sandbox):
    for name in ("Receipt", "ReceiptSignature"):
        page = sandbox.open_form(sandbox.pay_fields(**{name: None}))
        assert merchant_error(page) == (
            f"Mandatory parameter '{name}' is not present in the request"
        )


def test_pay_shows_the_sandboxs_reason_beside_the_specs(sandbox):
    page = sandbox.open_form(sandbox.pay_fields(body=with_line(vat="-1")))
    assert "<!-- SANDBOX: lines[0].vat must be a number without quotes" in page.text


def test_an_order_id_tried_before_needs_the_same_receipt(sandbox):
    declined = sandbox.pay(sandbox.pay_fields(), card=DECLINE_CARD)
    assert declined.headers["Location"].startswith("http://shop.test/no")
    other = receipt(customer={"email": "petr@example.com"})
    page = sandbox.open_form(sandbox.pay_fields(body=other))
    assert merchant_error(page) == "Receipt does not match with order"
    again = sandbox.pay(sandbox.pay_fields())
    assert again.headers["Location"].startswith("http://shop.test/ok")


def test_pay_refuses_a_preauthorization_and_other_currencies(sandbox):
    assert merchant_error(sandbox.open_form(sandbox.pay_fields(Preauth="1"))) == (
        "Wrong payment type"
    )
    page = sandbox.open_form(sandbox.pay_fields(Currency="USD"))
    assert merchant_error(page) == "Incorrect currency"


def test_the_plain_pay_page_is_unchanged_by_a_receipt_field(sandbox):
    fields = sandbox.pay_fields()
    page = sandbox.post("/pay/", fields)
    assert 'name="token"' in page.text
    sandbox.set_shop(fiscal=False)
    assert 'name="token"' in sandbox.post("/pay/", fields).text


# -- a sale whose receipt fails --------------------------------------------------


def test_a_failed_sale_receipt_reverses_the_payment_with_protection(sandbox):
    assert sandbox.faults(fail_sale_receipts=1)["fail_sale_receipts"] == 1
    redirect = sandbox.pay(sandbox.pay_fields())
    assert redirect.headers["Location"] == "http://shop.test/no?Order_ID=ORD-1"
    sandbox.idle()
    assert sandbox.shop.received == []  # the operation stops (§2.1.2, 8.3.1)
    assert sandbox.results("ORD-1") == [["ORD-1", "Canceled", "100.00", ""]]
    assert sandbox.faults()["fail_sale_receipts"] == 0
    # The id was blocked and reversed: like a cancelled order, it stays used.
    assert "не может быть оплачен" in sandbox.open_form(sandbox.pay_fields()).text
    retry = sandbox.pay(sandbox.pay_fields("ORD-2"))
    assert retry.headers["Location"].startswith("http://shop.test/ok")


def test_a_failed_sale_receipt_without_protection_keeps_the_payment(sandbox):
    sandbox.set_shop(fiscal_protection=False)
    sandbox.faults(fail_sale_receipts=1)
    assert (
        sandbox.pay(sandbox.pay_fields())
        .headers["Location"]
        .startswith("http://shop.test/ok")
    )
    sandbox.idle()
    assert [b["Status"] for b in sandbox.shop.posts("/notify")] == [
        "authorized",
        "paid",
    ]
    fiscal = sandbox.shop.posts("/fiscal")
    assert [check_fiscal_notification(body) for body in fiscal] == [[], []]
    assert sandbox.results("ORD-1") == [["ORD-1", "Paid", "100.00", ""]]


# -- recurrent charges ----------------------------------------------------------------


def test_recurrent_charge_answers_its_receipt(sandbox, paid):
    (answer,) = sandbox.recurrent("REC-1", "250.00")
    assert answer["Response_Code"] == "AS000" and answer["Status"] == "Authorized"
    assert answer["Signature"] == md5("REC-1" + "250.00" + PASSWORD).upper()
    (sold,) = decode_array(answer["Receipt"])
    assert sold["total"] == 250 and sold["fiscal"]["type"] == 0
    sandbox.idle()
    (authorized, _) = sandbox.shop.posts("/fiscal")
    assert check_fiscal_notification(authorized) == [sold]
    assert decode_array(sandbox.results("REC-1")[0][3]) == [sold]


def test_recurrent_53_reverses_the_charge(sandbox, paid):
    sandbox.faults(fail_sale_receipts=1)
    assert sandbox.recurrent("REC-1") == [
        {"ErrorCode": "53", "ErrorMessage": "Fiscal receipt failure"}
    ]
    sandbox.idle()
    assert sandbox.shop.received == []
    assert sandbox.results("REC-1") == [["REC-1", "Canceled", "100.00", ""]]


def test_recurrent_54_keeps_the_charge_without_a_receipt(sandbox, paid):
    sandbox.faults(fail_sale_receipts_kept=1)
    assert sandbox.recurrent("REC-1") == [
        {
            "ErrorCode": "54",
            "ErrorMessage": "Fiscal receipt failure. Order not cancelled",
        }
    ]
    sandbox.idle()
    assert [b["Status"] for b in sandbox.shop.posts("/notify")] == [
        "authorized",
        "paid",
    ]
    assert sandbox.results("REC-1") == [["REC-1", "Paid", "100.00", ""]]


def test_a_declined_recurrent_charge_registers_no_receipt(sandbox, paid):
    (answer,) = sandbox.recurrent("REC-1", "2500.00")
    assert answer["Response_Code"] == "AS100" and answer["Receipt"] == ""


@pytest.mark.parametrize(
    ("change", "code", "text"),
    [
        ({"body": receipt(taxmode="1")}, "10", "Field Receipt has invalid format"),
        (
            {"body": receipt(payments=[{"kind": 1, "type": 0, "amount": 1}])},
            "12",
            "Field Receipt has invalid payments",
        ),
        ({"ReceiptSignature": "0" * 64}, "11", "Invalid ReceiptSignature"),
        (
            {"Receipt": None},
            "3",
            "Mandatory parameter 'Receipt' is not present in the request",
        ),
    ],
)
def test_recurrent_refusals(sandbox, paid, change, code, text):
    assert sandbox.recurrent("REC-1", **change) == [
        {"ErrorCode": code, "ErrorMessage": text}
    ]


def test_recurrent_of_a_shop_without_cash_register_is_5(sandbox, paid):
    sandbox.set_shop(fiscal=False)
    assert sandbox.recurrent("REC-1") == [
        {"ErrorCode": "5", "ErrorMessage": "Cashbox settings does not set for upoint"}
    ]


# -- refunds --------------------------------------------------------------------------


def test_full_refund_without_subtotal(sandbox, paid):
    answer = sandbox.cancel()
    assert answer["Code"] == "00" and answer["Status"] == "Canceled"
    assert answer["Balance"] == "0.00"
    (refund,) = decode_array(answer["Receipt"])
    assert refund["fiscal"]["type"] == 1 and refund["total"] == 100
    sandbox.idle()
    assert [b["Status"] for b in sandbox.shop.posts("/notify")] == ["canceled"]
    (notification,) = sandbox.shop.posts("/fiscal")
    assert check_fiscal_notification(notification) == [refund]
    (row,) = sandbox.results("ORD-1")
    assert [r["fiscal"]["type"] for r in decode_array(row[3])] == [0, 1]
    link = refund["fiscal"]["register"]["fiscal_link"]
    page = sandbox.http.get(link, timeout=5)
    assert "Возврат прихода" in page.text and parse_qs(urlsplit(link).query)["n"] == [
        "2"
    ]


def test_partial_refunds_then_the_rest(sandbox, paid):
    answer = sandbox.cancel(subtotal="40.00")
    assert (answer["Code"], answer["Status"], answer["Balance"]) == (
        "00",
        "Paid",
        "60.00",
    )
    assert decode_array(answer["Receipt"])[0]["total"] == 40
    over = sandbox.cancel(subtotal="70.00")
    assert over["Code"] == "03" and over["Balance"] == "60.00"
    # Without Subtotal the refund is the balance: its receipt must say 60.00.
    assert sandbox.cancel()["Code"] == "10"
    rest = sandbox.cancel(body=receipt("60.00"))
    assert (rest["Code"], rest["Status"]) == ("00", "Canceled")
    assert decode_array(rest["Receipt"])[0]["total"] == 60
    again = sandbox.cancel()
    assert again["Note"] == "The order has already been cancelled"


@pytest.mark.parametrize(
    ("subtotal", "body", "code", "note"),
    [
        ("40.00", receipt("100.00"), "10", "Field Receipt has invalid format"),
        (None, receipt("40.00"), "10", "Field Receipt has invalid format"),
        (
            "40.00",
            receipt("40.00", payments=[{"kind": 1, "type": 0, "amount": 1}]),
            "12",
            "Field Receipt has invalid payments",
        ),
    ],
)
def test_a_refund_receipt_must_be_the_refunded_amount(
    sandbox, paid, subtotal, body, code, note
):
    answer = sandbox.cancel(subtotal=subtotal, body=body)
    assert (answer["Code"], answer["Note"]) == (code, note)
    assert answer["Balance"] == "100.00" and answer["Receipt"] == ""


def test_refund_signature_and_mandatory_fields(sandbox, paid):
    assert sandbox.cancel(Signature="0" * 64)["Code"] == "11"
    assert sandbox.cancel(Signature="подпись")["Code"] == "11"
    answer = sandbox.post("/v2/cancel", {"OrderID": "ORD-1", "UPID": SHOP_ID}).json()
    assert answer["Code"] == "02" and "'Signature'" in answer["Note"]
    assert sandbox.cancel(order_id="NOPE")["Code"] == "03"
    sandbox.set_shop(fiscal=False)
    assert sandbox.cancel()["Code"] == "05"


def test_refund_50_refunds_nothing(sandbox, paid):
    sandbox.faults(fail_refund_receipts=1)
    answer = sandbox.cancel()
    assert answer == {
        "Code": "50",
        "Note": "Fiscal reversal receipt failure",
        "Receipt": "",
        "Status": "Paid",
        "Balance": "100.00",
    }
    sandbox.idle()
    assert sandbox.shop.received == []
    (row,) = sandbox.results("ORD-1")
    assert row[1] == "Paid" and len(decode_array(row[3])) == 1
    assert sandbox.cancel()["Code"] == "00"


def test_refund_51_refunds_nothing_and_corrects_the_refund_receipt(sandbox, paid):
    sandbox.faults(fail_refunds_after_receipt=1)
    answer = sandbox.cancel(subtotal="40.00")
    assert (answer["Code"], answer["Note"]) == (
        "51",
        "Fiscal reversal operation failure",
    )
    assert (answer["Status"], answer["Balance"]) == ("Paid", "100.00")
    refund, correction = decode_array(answer["Receipt"])
    assert (refund["fiscal"]["type"], correction["fiscal"]["type"]) == (1, 2)
    assert correction["causeDocumentNumber"] == str(
        refund["fiscal"]["register"]["fiscal_number"]
    )
    (row,) = sandbox.results("ORD-1")
    assert [r["fiscal"]["type"] for r in decode_array(row[3])] == [0, 1, 2]


def test_full_refund_without_a_receipt_refunds_the_sale_receipt(sandbox, paid):
    partial = sandbox.cancel(subtotal="40.00", body=False)
    assert partial["Code"] == "03"
    no_subtotal = sandbox.cancel(body=False)
    assert "'Subtotal'" in no_subtotal["Note"]
    answer = sandbox.cancel(subtotal="100.00", body=False)
    assert answer["Code"] == "00"
    (refund,) = decode_array(answer["Receipt"])
    sent = json.loads(base64.b64decode(paid["Receipt"]))
    assert {k: v for k, v in refund.items() if k != "fiscal"} == sent


def test_a_plain_payment_refunds_through_v2_only_with_a_receipt(sandbox):
    fields = sandbox.pay_fields()
    fields = {k: v for k, v in fields.items() if not k.startswith("Receipt")}
    token = re.search(r'value="([^"]+)"', sandbox.post("/pay/", fields).text)
    form = {"token": token.group(1), "card_number": CARD, "exp_month": "12"}
    form.update(exp_year="35", cvc="123", holder="")
    sandbox.post("/pay/card", form, allow_redirects=False)
    sandbox.idle()
    without = sandbox.cancel(subtotal="100.00", body=False)
    assert "'Receipt'" in without["Note"]
    answer = sandbox.cancel()
    assert answer["Code"] == "00" and len(decode_array(answer["Receipt"])) == 1
    sandbox.idle()
    # A payment made without receipts gets no fiscal notifications.
    assert sandbox.shop.posts("/fiscal") == []


# -- fiscal notifications ---------------------------------------------------------


def test_dropped_fiscal_notifications(sandbox):
    sandbox.faults(drop_fiscal_notifications=True)
    sandbox.pay(sandbox.pay_fields())
    sandbox.idle()
    assert sandbox.shop.posts("/fiscal") == []
    assert len(sandbox.shop.posts("/notify")) == 2
    # Their receipt is still in the results (§2.1.2, 8.6).
    assert len(decode_array(sandbox.results("ORD-1")[0][3])) == 1


def test_delayed_fiscal_notifications_follow_the_ordinary_ones(sandbox):
    sandbox.faults(fiscal_notification_delay_ms=300)
    sandbox.pay(sandbox.pay_fields())
    sandbox.idle()
    paths = [path for path, _ in sandbox.shop.received]
    assert paths == ["/notify", "/notify", "/fiscal", "/fiscal"]


def test_fiscal_notifications_are_retried_each_on_their_own(sandbox):
    # authorized fails once paid is queued too (both delayed): it is still
    # tried again, where an ordinary callback would be superseded.
    sandbox.set_shop(notify_url="")
    sandbox.faults(fiscal_notification_delay_ms=100)
    sandbox.shop.answers = [503]
    sandbox.pay(sandbox.pay_fields())
    sandbox.idle()
    statuses = [body["Status"] for body in sandbox.shop.posts("/fiscal")]
    assert sorted(statuses) == ["authorized", "authorized", "paid"]


def test_duplicated_fiscal_notifications(sandbox):
    sandbox.faults(duplicate_callbacks=2)
    sandbox.pay(sandbox.pay_fields())
    sandbox.idle()
    bodies = [b for b in sandbox.shop.posts("/fiscal") if b["Status"] == "authorized"]
    assert len(bodies) == 2 and bodies[0] == bodies[1]


def test_json_fiscal_notifications(sandbox):
    sandbox.pay(sandbox.pay_fields(CallbackFormat="json"))
    sandbox.idle()
    (authorized, _) = sandbox.shop.posts("/fiscal")
    assert len(check_fiscal_notification(authorized)) == 1


# -- knobs and settings -----------------------------------------------------------


def test_fault_knobs_are_checked(sandbox):
    answer = sandbox.http.post(
        sandbox.url + "/_sandbox/faults", json={"fail_refund_receipts": -1}, timeout=5
    )
    assert answer.status_code == 400
    assert sandbox.faults(fail_refunds_after_receipt=2)["fail_refunds_after_receipt"]
    reset = sandbox.http.delete(sandbox.url + "/_sandbox/faults", timeout=5).json()
    assert reset["fail_refunds_after_receipt"] == 0


def test_fiscal_shop_settings_in_the_api_and_the_cli(sandbox):
    answer = sandbox.http.post(
        sandbox.url + "/_sandbox/shops",
        json={
            "shop_id": "00000009",
            "password": "p",
            "login": "9",
            "fiscal": True,
            "fiscal_notify_url": "http://shop.test/fiscal",
        },
        timeout=5,
    ).json()
    assert answer["fiscal"] is True and answer["fiscal_protection"] is True
    assert answer["fiscal_notify_url"] == "http://shop.test/fiscal"
    runner = sandbox.app.test_cli_runner()
    added = runner.invoke(
        args="shop add 00000008 --password p --login 8 --fiscal"
        " --fiscal-notify-url http://shop.test/f --no-fiscal-protection".split()
    )
    assert added.exit_code == 0, added.output
    # The CLI stops the worker of the app it is given: start it again.
    sandbox.app.extensions["sandbox"].start()
    listed = runner.invoke(args=["shop", "list"]).output
    line = next(line for line in listed.splitlines() if line.startswith("00000008"))
    assert "fiscal_notify=http://shop.test/f" in line
    assert " fiscal" in line and "fiscal_protection" not in line
    sandbox.app.extensions["sandbox"].start()


def test_an_older_database_gets_the_fiscal_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(
            "CREATE TABLE shops (shop_id TEXT PRIMARY KEY, password TEXT NOT NULL,"
            " login TEXT NOT NULL, notify_url TEXT NOT NULL DEFAULT '',"
            " status_url TEXT NOT NULL DEFAULT '',"
            " callback_fields TEXT NOT NULL DEFAULT '',"
            " recurrent_allowed INTEGER NOT NULL DEFAULT 1,"
            " partial_refund_allowed INTEGER NOT NULL DEFAULT 1,"
            " notify_balance INTEGER NOT NULL DEFAULT 0);"
            "INSERT INTO shops (shop_id, password, login) VALUES ('7', 'p', 'l');"
            "CREATE TABLE callbacks (id INTEGER PRIMARY KEY,"
            " order_row INTEGER NOT NULL, status TEXT NOT NULL, url TEXT NOT NULL,"
            " params TEXT NOT NULL, format TEXT NOT NULL DEFAULT '',"
            " state TEXT NOT NULL DEFAULT 'pending', held INTEGER NOT NULL DEFAULT 0,"
            " attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);"
        )
    old.close()
    app = create_app({"SANDBOX_DATABASE": str(path)})
    try:
        (shop,) = app.extensions["sandbox"].shops()
        assert shop["fiscal"] is False and shop["fiscal_protection"] is True
        assert shop["fiscal_notify_url"] == ""
        store = app.extensions["sandbox"].store
        columns = {c["name"] for c in store.all("PRAGMA table_info(callbacks)")}
        assert "channel" in columns
    finally:
        app.extensions["sandbox"].close()


def test_the_operator_view_lists_receipts_and_fiscal_notifications(sandbox, paid):
    page = sandbox.http.get(sandbox.url + "/", timeout=5).text
    assert "fiscalized" in page and "Приход №" in page
    orders = sandbox.http.get(sandbox.url + "/_sandbox/orders", timeout=5).json()
    (order,) = orders
    assert [r["fiscal"]["type"] for r in order["receipts"]] == [0]
    assert {c["channel"] for c in order["callbacks"]} == {"notify", "fiscal"}


def test_refund_rows_of_the_results_carry_their_own_receipt(sandbox, paid):
    sandbox.cancel(subtotal="40.00")
    rows = sandbox.results("ORD-1", PaymentsResults="3")
    assert [row[1] for row in rows] == ["Paid", "Refund"]
    assert [r["fiscal"]["type"] for r in decode_array(rows[0][3])] == [0, 1]
    (refund,) = decode_array(rows[1][3])
    assert refund["fiscal"]["type"] == 1 and refund["total"] == 40
