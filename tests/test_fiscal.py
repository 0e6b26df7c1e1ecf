"""54-FZ receipts: the profile, the receipt's JSON, its signatures, its callback."""

import base64
import hashlib
import json
import re

import pytest
from flask import g

from cabinet import configurations, fiscal, payments
from cabinet.errors import Forbidden
from cabinet.models import (
    AuditEntry,
    Contract,
    FiscalDocument,
    ModuleConfiguration,
    Receipt,
    Transaction,
)
from cabinet.params import ParamError, validate
from cabinet.uniteller import signatures
from tests.helpers import (
    FISCAL_PROFILE,
    NEW_CONFIG,
    console_login,
    fiscal_callback,
    fiscalized,
    login,
    signed_callback,
)

PASSWORD = "secret"


def profile(*changes):
    """The test profile's assignments with some replaced, as a dict."""
    values = dict(item.split("=", 1) for item in FISCAL_PROFILE)
    values.update(dict(item.split("=", 1) for item in changes))
    return values


@pytest.fixture
def fiscal_demo(demo, shop):
    """The demo instance's configuration switched to fiscal payments."""
    configuration = demo["instance"].active_configuration()
    configurations.update_configuration(
        configuration, {**configuration.params, **profile()}
    )
    return demo


def start(contract, amount=50000):
    return payments.start_payment(contract, amount, "http://ok.test", "http://no.test")


# --- the profile -----------------------------------------------------------------


@pytest.mark.nodb
@pytest.mark.parametrize(
    "changes, key, words",
    [
        (["fiscal_taxmode="], "fiscal_taxmode", "tax system is required"),
        (["fiscal_vat="], "fiscal_vat", "VAT rate is required"),
        (["fiscal_place="], "fiscal_place", "place of settlement"),
        (["fiscal_taxmode=0", "fiscal_vat=5"], "fiscal_vat", "simplified system"),
        (["fiscal_taxmode=5", "fiscal_vat=22"], "fiscal_vat", "patent"),
        (["fiscal_taxmode=0", "fiscal_vat=22"], "fiscal_vat", "calculated rate 122"),
        (["fiscal_lineattr=4"], "fiscal_lineattr", "subject 10"),
        (["fiscal_vat=18"], "fiscal_vat", "one of"),
        (["fiscal_line=Оплата €"], "fiscal_line", "CP866"),
        (["fiscal_line=" + "я" * 110 + " {contract}"], "fiscal_line", "128"),
        (["fiscal_line=Оплата {number}"], "fiscal_line", "placeholder"),
        (["fiscal_ffd=1.1"], "fiscal_ffd", "one of"),
    ],
)
def test_an_incomplete_or_inconsistent_profile_is_refused(app, changes, key, words):
    with app.app_context(), pytest.raises(ParamError) as refused:
        validate(profile(*changes))
    assert refused.value.key == key
    assert words in str(refused.value)


@pytest.mark.nodb
def test_a_consistent_profile_passes_and_off_needs_nothing(app):
    with app.app_context():
        assert validate(profile())["fiscal"] == "yes"
        # A prepaid period of a tariff under OSN: method 1, a service, 22/122.
        validate(profile("fiscal_taxmode=0", "fiscal_vat=122", "fiscal_payattr=1"))
        validate(profile("fiscal_payattr=1", "fiscal_lineattr=4"))
        assert validate({"fiscal": "no"}) == {"fiscal": "no"}


# --- the receipt ---------------------------------------------------------------------


def test_the_receipt_has_the_specs_types_and_equal_totals(fiscal_demo):
    transaction, form = start(fiscal_demo["contract"], 50050)
    text = base64.b64decode(form.fields["Receipt"]).decode("utf-8")
    # Only customer values and the line's name are quoted (fiscal, Appendix 9).
    quoted_values = re.findall(r'"(\w+)":"', text)
    assert sorted(quoted_values) == ["email", "id", "name", "place"]
    assert '"price":500.50' in text and '"total":500.50' in text
    receipt = json.loads(text)
    assert receipt == {
        "internet": 1,
        "customer": {"email": "ivanov@example.com", "id": "1001"},
        "taxmode": 1,
        "lines": [
            {
                "name": "Оплата услуг связи по договору 1001",
                "price": 500.5,
                "qty": 1,
                "sum": 500.5,
                "vat": -1,
                "payattr": 3,
                "lineattr": 10,
            }
        ],
        "params": {"place": "https://pay.isp.test"},
        "payments": [{"kind": 1, "type": 0, "amount": 500.5}],
        "total": 500.5,
    }
    assert form.fields["Subtotal_P"] == "500.50"
    assert len(form.fields["Receipt"]) <= 29999


def test_format_105_has_no_internet_flag_nor_place(fiscal_demo):
    configuration = fiscal_demo["instance"].active_configuration()
    configurations.update_configuration(
        configuration, {**configuration.params, "fiscal_ffd": "1.05"}
    )
    _, form = start(fiscal_demo["contract"])
    receipt = fiscal.decode(form.fields["Receipt"])
    assert "internet" not in receipt and "params" not in receipt


def test_the_pay_form_goes_to_v2_pay_signed_and_its_receipt_is_frozen(
    fiscal_demo, shop
):
    transaction, form = start(fiscal_demo["contract"])
    assert form.action == "http://gateway.test/v2/pay"
    stored = Receipt.of_sale(transaction.id)
    assert (stored.body, stored.state, stored.total, stored.contact) == (
        form.fields["Receipt"],
        "pending",
        50000,
        "ivanov@example.com",
    )
    assert form.fields["ReceiptSignature"] == signatures.receipt_signature(
        shop["password"],
        shop["shop_id"],
        transaction.order_id,
        "500.00",
        form.fields["Receipt"],
    )
    # The ordinary Signature is the one of /pay/, as if there were no receipt.
    assert form.fields["Signature"] == signatures.pay_signature(
        shop["password"],
        shop["shop_id"],
        transaction.order_id,
        "500.00",
        lifetime=form.fields["Lifetime"],
        customer_idp="1001",
    )
    # Another payment is another order with its own receipt: none is reused.
    again, second = start(fiscal_demo["contract"])
    assert again.order_id != transaction.order_id
    assert Receipt.select().count() == 2


def test_a_payment_without_any_contact_is_refused_and_writes_nothing(fiscal_demo):
    other = fiscal_demo["other"]  # no e-mail, no phone
    other.instance = fiscal_demo["instance"]
    other.save()
    with pytest.raises(fiscal.ContactRequired):
        start(other)
    assert Transaction.select().where(Transaction.contract == other).count() == 0
    assert Receipt.select().count() == 0


def test_a_phone_is_a_contact_and_is_never_invented(fiscal_demo):
    from cabinet import accounts

    other = accounts.set_contact(fiscal_demo["other"], phone="8 (912) 345-67-89")
    other.instance = fiscal_demo["instance"]
    other.save()
    _, form = start(other)
    assert fiscal.decode(form.fields["Receipt"])["customer"] == {
        "phone": "+79123456789",
        "id": "1002",
    }


def test_without_the_profile_the_form_is_the_plain_one(demo):
    transaction, form = start(demo["contract"])
    assert form.action == "http://gateway.test/pay/"
    assert "Receipt" not in form.fields
    assert Receipt.of_sale(transaction.id) is None


def test_a_refund_receipt_keeps_the_sales_method_and_vat(fiscal_demo):
    transaction, form = start(fiscal_demo["contract"], 50000)
    configuration = fiscal_demo["instance"].active_configuration()
    configurations.update_configuration(
        configuration,
        {**configuration.params, "fiscal_vat": "5", "fiscal_payattr": "4"},
    )
    refund = fiscal.build_refund(form.fields["Receipt"], 12345)
    text = fiscal.encode(refund)
    receipt = fiscal.decode(text)
    assert receipt["lines"][0]["vat"] == -1 and receipt["lines"][0]["payattr"] == 3
    assert receipt["total"] == receipt["lines"][0]["sum"] == 123.45
    assert receipt["payments"] == [{"kind": 1, "type": 0, "amount": 123.45}]


# --- signatures: the vector of shared/uniteller-protocol.md and our own ----------


@pytest.mark.nodb
def test_receipt_signature_vectors():
    # shared/uniteller-protocol.md §13.
    assert (
        signatures.receipt_signature("secret", "00000001", "ORD-1", "100.00", "e30=")
        == "57A55E9A70FAAC0649027DCE07EF7A6D8273D312D8A0744764C71F69894408F9"
    )
    # Ours, from §3.15: uppercase(sha256(Order_ID + Status + Receipt + password)).
    assert (
        signatures.fiscal_callback_signature("secret", "ORD-1", "paid", "e30=")
        == "84F5DF768503AE7846E53102BA9FBD1B31E743171C785F07A8482E8E27827388"
    )


@pytest.mark.nodb
def test_cancel_signature_leaves_out_what_is_not_sent():
    # §3.14: a field not sent takes no part, nor its "&".
    def sha(text):
        return hashlib.sha256(text.encode()).hexdigest()

    full = signatures.cancel_signature("secret", "ORD-1", "00000001", None, "e30=")
    part = signatures.cancel_signature("secret", "ORD-1", "00000001", "10.00", "e30=")
    assert (
        full == sha("&".join(map(sha, ["ORD-1", "00000001", "e30=", "secret"]))).upper()
    )
    assert (
        part
        == sha(
            "&".join(map(sha, ["ORD-1", "00000001", "10.00", "e30=", "secret"]))
        ).upper()
    )


# --- the fiscal notification ---------------------------------------------------


def test_a_fiscal_callback_credits_once_and_keeps_its_receipt_once(
    fiscal_demo, shop, client
):
    transaction, form = start(fiscal_demo["contract"])
    document = fiscalized(fiscal.decode(form.fields["Receipt"]), "F-1")
    fields = fiscal_callback(
        transaction.order_id, "paid", shop["password"], [document], total="500.00"
    )
    for _ in range(2):  # Uniteller sends it again: nothing changes twice
        answer = client.post("/uniteller/isp/fiscal", data=fields)
        assert answer.status_code == 200
    paid = Transaction.get_by_id(transaction.id)
    assert (paid.status, paid.contract.balance) == ("paid", 50000)
    (kept,) = FiscalDocument.select()
    assert (kept.fiscal_id, kept.doc_type, kept.fiscal_link, kept.source) == (
        "F-1",
        0,
        "https://check.test/r",
        "callback",
    )
    assert Receipt.of_sale(transaction.id).state == "issued"
    # The ordinary callback for the same order afterwards changes nothing more.
    plain = signed_callback(transaction.order_id, "paid", shop["password"], "500.00")
    assert client.post("/uniteller/isp/notify", data=plain).status_code == 200
    assert Transaction.get_by_id(transaction.id).contract.balance == 50000


def test_a_fiscal_callback_with_a_bad_receipt_signature_changes_nothing(
    fiscal_demo, shop, client
):
    transaction, form = start(fiscal_demo["contract"])
    document = fiscalized(fiscal.decode(form.fields["Receipt"]), "F-2")
    fields = fiscal_callback(transaction.order_id, "paid", shop["password"], [document])
    fields["ReceiptSignature"] = "0" * 64
    assert client.post("/uniteller/isp/fiscal", data=fields).status_code == 403
    assert Transaction.get_by_id(transaction.id).status == "new"
    assert FiscalDocument.select().count() == 0


def test_receipts_sent_to_the_ordinary_url_are_kept_too(fiscal_demo, shop, client):
    transaction, form = start(fiscal_demo["contract"])
    document = fiscalized(fiscal.decode(form.fields["Receipt"]), "F-3")
    fields = fiscal_callback(transaction.order_id, "paid", shop["password"], [document])
    assert client.post("/uniteller/isp/notify", data=fields).status_code == 200
    assert Receipt.of_sale(transaction.id).state == "issued"


def test_a_payment_reversed_without_a_receipt_marks_it_failed(fiscal_demo, shop):
    transaction, _ = start(fiscal_demo["contract"])
    for status in ("paid", "canceled"):
        payments.receive_callback(
            "isp", signed_callback(transaction.order_id, status, shop["password"])
        )
    receipt = Receipt.of_sale(transaction.id)
    assert receipt.state == "failed" and "reversed" in receipt.note


def test_a_fiscal_callback_needs_its_receipt_fields(fiscal_demo, shop, client):
    transaction, _ = start(fiscal_demo["contract"])
    fields = signed_callback(transaction.order_id, "paid", shop["password"])
    fields["Receipt"] = ""
    answer = client.post("/uniteller/isp/fiscal", data=fields)
    assert answer.status_code == 400
    with pytest.raises(Forbidden):
        fiscal.receive_fiscal_callback(
            "isp", list({**fields, "ReceiptSignature": "x"}.items())
        )


# --- the subscriber's side: the contact, the receipt in the history ------------------


@pytest.fixture
def no_contact(fiscal_demo):
    """Contract 1002 (no e-mail, no phone) paying through the fiscal configuration."""
    other = fiscal_demo["other"]
    other.instance = fiscal_demo["instance"]
    other.save()
    return other


def test_the_pay_page_asks_where_to_send_the_receipt(client, no_contact):
    login(client, "1002", "other-pass")
    page = client.get("/pay").get_data(as_text=True)
    assert 'name="contact"' in page and "54-ФЗ" in page
    refused = client.post("/pay", data={"amount": "500"})
    assert refused.status_code == 400
    assert "Укажите e-mail или телефон" in refused.get_data(as_text=True)
    wrong = client.post("/pay", data={"amount": "500", "contact": "not me"})
    assert "ни на e-mail, ни на телефон" in wrong.get_data(as_text=True)
    assert Transaction.select().where(Transaction.contract == no_contact).count() == 0
    paid = client.post("/pay", data={"amount": "500", "contact": "+7 912 345 67 89"})
    assert paid.status_code == 200 and "/v2/pay" in paid.get_data(as_text=True)
    kept = Contract.get_by_id(no_contact.id)
    assert (kept.phone, kept.email) == ("+79123456789", None)
    (receipt,) = Receipt.select()
    assert receipt.contact == "+79123456789"
    # Asked once: the next payment goes straight on. (The test's one app context
    # keeps the logged-in contract in g across requests; a server has one each.)
    g.pop("_login_user", None)
    assert 'name="contact"' not in client.get("/pay").get_data(as_text=True)


def test_a_contract_with_an_email_is_not_asked(client, fiscal_demo):
    login(client)
    assert 'name="contact"' not in client.get("/pay").get_data(as_text=True)


def test_autopay_consent_asks_for_the_contact_too(client, no_contact):
    configuration = no_contact.instance.active_configuration()
    configurations.update_configuration(
        configuration, {**configuration.params, "autopay_monthly": "yes"}
    )
    login(client, "1002", "other-pass")
    assert 'name="contact"' in client.get("/autopay").get_data(as_text=True)
    form = {
        "mode": "monthly",
        "day_of_month": "5",
        "amount": "300",
        "password": "other-pass",
        "consent": "y",
    }
    assert client.post("/autopay", data=form).status_code == 400
    bound = client.post("/autopay", data={**form, "contact": "anna@example.com"})
    assert "/v2/pay" in bound.get_data(as_text=True)
    assert Contract.get_by_id(no_contact.id).email == "anna@example.com"


def test_the_history_shows_each_payments_receipt(client, fiscal_demo, shop):
    issued, form = start(fiscal_demo["contract"])
    waiting, _ = start(fiscal_demo["contract"], 20000)
    document = fiscalized(
        fiscal.decode(form.fields["Receipt"]), "F-9", link="https://check.test/F-9"
    )
    payments.receive_callback(
        "isp", signed_callback(issued.order_id, "paid", shop["password"])
    )
    payments.receive_callback(
        "isp", signed_callback(waiting.order_id, "paid", shop["password"])
    )
    fiscal.record_documents(Transaction.get_by_id(issued.id), [document], "callback")
    login(client)
    page = client.get("/payments").get_data(as_text=True)
    assert 'href="https://check.test/F-9"' in page
    assert "ivanov@example.com" in page
    assert "Чек формируется" in page  # the second one's receipt is on its way


def test_the_console_saves_a_fiscal_profile_and_says_what_is_wrong(client, staff):
    console_login(client)
    form = {
        **NEW_CONFIG,
        "fiscal": "y",
        "fiscal_gateway_url": "http://gateway.test",
        "fiscal_taxmode": "0",
        "fiscal_vat": "22",  # a plain rate on an advance: refused
        "fiscal_payattr": "3",
        "fiscal_lineattr": "10",
        "fiscal_ffd": "1.2",
        "fiscal_place": "https://pay.isp.test",
    }
    refused = client.post("/console/instances/isp/configs/new", data=form)
    assert refused.status_code == 400
    assert "122" in refused.get_data(as_text=True)
    saved = client.post(
        "/console/instances/isp/configs/new", data={**form, "fiscal_vat": "122"}
    )
    assert saved.status_code == 302
    params = (
        staff["instance"]
        .configurations.where(ModuleConfiguration.name == "reserve")
        .get()
        .params
    )
    assert (params["fiscal"], params["fiscal_vat"], params["fiscal_taxmode"]) == (
        "yes",
        "122",
        "0",
    )


def test_the_console_shows_receipts_and_lists_the_ones_to_look_at(
    client, staff, fiscal_demo, shop
):
    issued, form = start(fiscal_demo["contract"])
    lost, _ = start(fiscal_demo["contract"], 20000)
    for order in (issued, lost):
        payments.receive_callback(
            "isp", signed_callback(order.order_id, "paid", shop["password"])
        )
    document = fiscalized(
        fiscal.decode(form.fields["Receipt"]), "F-7", link="https://check.test/F-7"
    )
    fiscal.record_documents(Transaction.get_by_id(issued.id), [document], "callback")
    fiscal.set_state(Receipt.of_sale(lost.id).id, "missing")
    console_login(client)
    page = client.get(f"/console/transactions/{issued.order_id}").get_data(as_text=True)
    assert 'href="https://check.test/F-7"' in page and "ivanov@example.com" in page
    monitor = client.get("/console/monitor?instance=isp").get_data(as_text=True)
    assert 'href="https://check.test/F-7"' in monitor
    exported = client.get("/console/monitor.csv?instance=isp").get_data(as_text=True)
    lines = exported.splitlines()
    assert lines[0].endswith(";Чек")
    states = {line.split(";")[1]: line.split(";")[-1] for line in lines[1:]}
    assert (states[issued.order_id], states[lost.order_id]) == (
        "пробит",
        "оплачено без чека",
    )
    listed = client.get("/console/receipts").get_data(as_text=True)
    assert lost.order_id in listed and issued.order_id not in listed
    asked = client.post(
        f"/console/transactions/{lost.order_id}/receipts/check", data={"back": "list"}
    )
    assert asked.status_code == 302 and asked.location.endswith("/console/receipts")
    assert (
        AuditEntry.select()
        .where(AuditEntry.action == "transaction.receipt_check")
        .count()
        == 1
    )
