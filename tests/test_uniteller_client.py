"""The Uniteller client against its specification (v1.43, fiscal 02.1.18)."""

import hashlib

import pytest
import requests

from cabinet.autopay import states
from cabinet.uniteller import client as uniteller
from cabinet.uniteller.client import (
    RESULT_FIELDS,
    RESULTS_S_FIELDS,
    GatewayUnavailable,
    UnitellerClient,
    parse_operation_answer,
    parse_results,
)

pytestmark = pytest.mark.nodb


def _md5(text):
    return hashlib.md5(text.encode()).hexdigest().upper()


def test_results_asks_only_for_documented_s_fields():
    # §8.1: a misspelt or unknown name gets an error answer; Balance is a
    # callback field, not a /results/ one.
    assert set(RESULT_FIELDS) <= RESULTS_S_FIELDS
    assert "Balance" not in RESULTS_S_FIELDS
    client = UnitellerClient("http://gw.test", "00000001", "secret", "1")
    with pytest.raises(ValueError, match="Balance"):
        client.results(order_id="ORD-1", fields=("OrderNumber", "Balance"))


def test_a_semicolon_inside_the_message_keeps_the_row():
    text = "ORD-1;Paid;500.00;123456789012;AB1234;AS000;;01.12.2026 10:00:00;a;b;c\r\n"
    rows = parse_results(text, RESULT_FIELDS)
    assert rows.unreadable == []
    assert rows[0]["Status"] == "Paid" and rows[0]["Message"] == "a;b;c"
    assert rows[0]["Date"] == "01.12.2026 10:00:00"


def test_rows_that_do_not_parse_are_counted_by_order_and_logged(caplog):
    text = (
        "ORD-1;Paid;500.00;123456789012;AB1234;AS000;;01.12.2026 10:00:00;ok\r\n"
        "ORD-2;Paid;500.00\r\n"
        "garbage\r\n"
    )
    rows = parse_results(text, RESULT_FIELDS)
    assert [r["OrderNumber"] for r in rows] == ["ORD-1"]
    assert rows.unreadable == ["ORD-2", ""]
    assert rows.names_unreadable("ORD-2") and rows.names_unreadable("ORD-9")
    assert "ORD-2" in caplog.text and "500.00" not in caplog.text


def test_an_operation_answer_with_a_stray_semicolon_is_unknown_not_misread():
    header = ";".join(uniteller_answer_columns())
    values = ["x"] * len(uniteller_answer_columns())
    values[3] = "a;b"  # Message, between fields the answer must keep in place
    with pytest.raises(GatewayUnavailable):
        parse_operation_answer("/unblock/", f"{header}\r\n{';'.join(values)}\r\n")


def uniteller_answer_columns():
    """The /unblock/ CSV answer's header (v1.43 §8.3.2.1.1)."""
    return (
        "OrderNumber;Response_Code;Recommendation;Message;Comment;Date;Total;"
        "Currency;CardType;CardNumber;LastName;FirstName;MiddleName;Address;Email;"
        "ApprovalCode;CVC2;CardHolder;IPAddress;BillNumber;BankName;Status;"
        "Error_Code;Error_Comment;PacketDate;PaymentType;Phone"
    ).split(";")


def test_each_call_waits_as_long_as_the_spec_lets_uniteller_take(monkeypatch):
    # §4.6.3: an early /results/ request is held up to 100 s before its 429.
    seen = {}

    def post(url, data, timeout):
        seen[url.rsplit("/", 2)[-2]] = timeout
        raise requests.ConnectionError("offline")

    monkeypatch.setattr(uniteller.requests, "post", post)
    client = UnitellerClient("http://gw.test", "00000001", "secret", "1")
    for call in (
        lambda: client.results(order_id="ORD-1"),
        lambda: client.unblock("123456789012", 100),
    ):
        with pytest.raises(GatewayUnavailable):
            call()
    connect, read = seen["results"]
    assert read > 100 and connect <= 10
    assert seen["unblock"][1] >= 60
    assert client.timeout >= read


def test_a_fiscal_shop_signs_approval_code_bill_number_and_total_first():
    # Fiscal 02.1.18 §3.15: ApprovalCode, BillNumber, Total in this fixed order,
    # then the other CallbackFields as listed.
    client = UnitellerClient("", "00000001", "secret")
    fields = {
        "Order_ID": "ORD-1",
        "Status": "paid",
        "BillNumber": "123456789012",
        "ApprovalCode": "AB1234",
        "Total": "100.00",
        "Card_IDP": "77",
    }
    listed = ["Card_IDP", "Total", "BillNumber", "ApprovalCode"]
    fiscal = _md5("ORD-1paid" + "AB1234" + "123456789012" + "100.00" + "77secret")
    assert client.callback_is_authentic({**fields, "Signature": fiscal}, listed)
    swapped = _md5("ORD-1paid" + "123456789012" + "AB1234" + "100.00" + "77secret")
    assert not client.callback_is_authentic({**fields, "Signature": swapped}, listed)


@pytest.mark.parametrize(
    "code, message, error_code",
    [
        ("AS998", "", "F01"),
        ("AS998", "Ошибка системы F01", ""),
        ("AS998", "", "f01"),
    ],
)
def test_f01_stops_the_series_wherever_uniteller_puts_it(code, message, error_code):
    assert states.is_hard_decline(code, message, error_code)


def test_a_system_error_without_f01_is_retried():
    assert not states.is_hard_decline("AS998", "Ошибка системы", "F02")
