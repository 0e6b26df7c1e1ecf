"""Our signature code against the vectors of the protocol reference (§13)."""

import pytest

from cabinet.uniteller import signatures as sig
from cabinet.uniteller.client import UnitellerClient, normalize_status

pytestmark = pytest.mark.nodb


def test_pay_vectors():
    assert sig.pay_signature("secret", "00000001", "ORD-1", "100.00") == (
        "E5227F1B81D7A004EAABD171F9188476"
    )
    assert sig.pay_signature("secret", "00000001", "ORD-1", "100") == (
        "D01587CCD67B511B89DA7A06B1FBD582"
    )
    assert (
        sig.pay_signature(
            "secret",
            "00000001",
            "ORD-1",
            "100.00",
            lifetime="300",
            customer_idp="cust-42",
        )
        == "5281BCC8D96B5E0A5086CB154AB446DC"
    )
    assert (
        sig.pay_signature(
            "secret",
            "00000001",
            "ORD-1",
            "100.00",
            mean_type="0",
            emoney_type="0",
            lifetime="300",
            order_lifetime="3600",
        )
        == "F4C67FF0F2E8CD653ABFFE5314AB5CB6"
    )
    assert sig.pay_signature("1qaz2wsx", "12345678-1234", "A1", "12.34") == (
        "3AEEFF4927BBA9A7EC27748F4C42CA34"
    )


def test_recurrent_vectors():
    assert sig.recurrent_signature(
        "secret", "00000001", "ORD-2", "100.00", "ORD-1"
    ) == ("D1E1CDB5C81EA01D10C0F7F34FE70961")
    assert sig.recurrent_signature(
        "secret", "00000001", "ORD-2", "100.00", "ORD-1", parent_shop_idp="00000002"
    ) == ("8085273C13A9D69AB6A05225094A85B2")
    assert sig.recurrent_answer_signature("secret", "ORD-2", "100.00") == (
        "F84785A1A9070A9B54DAC34588AA79BF"
    )


def test_callback_vectors():
    assert sig.callback_signature("secret", "ORD-1", "authorized") == (
        "A785357D0458C92EBBCF276F8E3159A9"
    )
    assert sig.callback_signature("secret", "ORD-1", "paid") == (
        "36F9A1C0436DC792EAFFF4DC2020649E"
    )
    assert sig.callback_signature("secret", "ORD-1", "canceled") == (
        "CA0822FDFE655B9E1722116F930EC439"
    )
    assert (
        sig.callback_signature(
            "secret", "ORD-1", "paid", ["123456789012", "AB1234", "100.00"]
        )
        == "2BF669F096352A1CEA50C8F96524D93B"
    )


def test_receipt_vector():
    assert sig.receipt_signature("secret", "00000001", "ORD-1", "100.00", "e30=") == (
        "57A55E9A70FAAC0649027DCE07EF7A6D8273D312D8A0744764C71F69894408F9"
    )


def test_pay_form_is_signed_over_what_it_sends():
    client = UnitellerClient("http://gw.test/", "00000001", "secret")
    form = client.pay_form(
        "ORD-1",
        10000,
        "http://us/ok",
        "http://us/no",
        customer_id="cust-42",
        lifetime=300,
        callback_fields=["BillNumber", "Total"],
    )
    assert form.action == "http://gw.test/pay/"
    assert form.fields["Subtotal_P"] == "100.00"
    assert form.fields["Signature"] == "5281BCC8D96B5E0A5086CB154AB446DC"
    assert form.fields["CallbackFields"] == "BillNumber Total"
    assert "secret" not in repr(client) and "secret" not in str(form.fields)


def test_callback_check_uses_listed_field_order_and_upper_case_only():
    client = UnitellerClient("", "00000001", "secret")
    fields = {
        "Order_ID": "ORD-1",
        "Status": "paid",
        "BillNumber": "123456789012",
        "ApprovalCode": "AB1234",
        "Total": "100.00",
        "Signature": "2BF669F096352A1CEA50C8F96524D93B",
    }
    order = ["BillNumber", "ApprovalCode", "Total"]
    assert client.callback_is_authentic(fields, order)
    assert not client.callback_is_authentic(fields, list(reversed(order)))
    assert not client.callback_is_authentic(
        {**fields, "Signature": fields["Signature"].lower()}, order
    )
    assert not client.callback_is_authentic({**fields, "Signature": ""}, order)
    assert not UnitellerClient("", "00000001", "").callback_is_authentic(fields, order)


@pytest.mark.parametrize(
    "word, ours",
    [
        ("paid", "paid"),
        ("Paid", "paid"),
        ("AUTHORIZED", "authorized"),
        ("canceled", "canceled"),
        ("cancelled", "canceled"),
        ("Not Authorized", "failed"),
        ("not_authorized", "failed"),
        ("waiting", "waiting"),
        ("bogus", None),
        (None, None),
    ],
)
def test_status_words_are_normalised(word, ours):
    assert normalize_status(word) == ours
