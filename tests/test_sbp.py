"""Paying by SBP through Uniteller's hosted page: the live cabinet and sandbox.

SBP goes only with 54-FZ receipts (v1.43 §4.1.9), so these worlds are fiscal.
"""

import time

import pytest
import requests

from cabinet import params, refunds
from cabinet.messages import shown
from cabinet.models import (
    Autopay,
    AutopayCharge,
    Contract,
    LedgerEntry,
    ModuleConfiguration,
    Notice,
    Refund,
    Transaction,
)
from cabinet.uniteller import signatures
from cabinet.uniteller.client import payment_type_limits
from cabinet.uniteller.sandbox.signatures import pay_signature as sandbox_pay_signature
from tests.helpers import (
    ALL_MODES,
    NEW_CONFIG,
    bind_autopay,
    console_login,
    daily_run,
    in_app,
    next_weekday,
    pay_by_card,
    pay_by_sbp,
)

SBP_ON = (*ALL_MODES, "sbp=yes", "sbp_autopay=yes")


@pytest.fixture
def sbp_world(make_world):
    """The live pair, fiscal, with SBP payments and SBP autopay on.

    An SBP refund settles a second after it is asked (1000 s at the time scale).
    """
    return make_world(fiscal=True, config=SBP_ON, SANDBOX_SBP_REFUND_DELAY=1000)


def transaction_of(world, order_id):
    with in_app(world):
        return Transaction.by_order_id(order_id)


def balance_of(world):
    with in_app(world):
        return Contract.get(Contract.number == world.contract_number).balance


def wait_for(check, timeout=15):
    """Wait until check() is true (what the sandbox does later, SBP's refunds)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- the signature and the settings ------------------------------------------------


def test_payment_type_limits_takes_the_slot_after_the_optional_ones():
    limits = payment_type_limits("13", "100.00")
    assert limits == '{"13":[100.00,100.00]}'
    ours = signatures.pay_signature(
        "secret", "00000001", "ORD-1", "100.00", payment_type_limits=limits
    )
    # By hand: slots 1-10, then PaymentTypeLimits, then the password (SBP v04 §4).
    md5 = signatures._md5
    parts = ["00000001", "ORD-1", "100.00", *[""] * 7, limits, "secret"]
    assert ours == md5("&".join(md5(p) for p in parts)).upper()
    fields = {
        "Shop_IDP": "00000001",
        "Order_IDP": "ORD-1",
        "Subtotal_P": "100.00",
        "PaymentTypeLimits": limits,
    }
    assert sandbox_pay_signature(fields, "secret") == ours
    assert ours != signatures.pay_signature("secret", "00000001", "ORD-1", "100.00")


def test_sbp_needs_receipts_and_sbp_autopay_needs_sbp():
    with pytest.raises(params.ParamError) as refused:
        params.validate({"sbp": "yes"})
    assert refused.value.key == "sbp"
    with pytest.raises(params.ParamError) as refused:
        params.validate({"sbp_autopay": "yes"})
    assert refused.value.key == "sbp_autopay"
    with pytest.raises(params.ParamError):
        params.validate({"sbp": "maybe"})


# -- payments ------------------------------------------------------------------------


def test_an_sbp_payment_is_credited_once_and_listed_as_sbp(sbp_world):
    world = sbp_world
    order_id, fields, sbp_page, returned = pay_by_sbp(world, "500")
    assert fields["PaymentTypeLimits"] == '{"13":[500.00,500.00]}'
    assert "<svg" in sbp_page and 'name="card_number"' not in sbp_page
    assert returned.status_code == 200
    world.settle()
    transaction = transaction_of(world, order_id)
    assert transaction.payment_type == "sbp" and transaction.is_credited
    assert transaction.bill_number in (None, "")  # SBP has no RRN (v1.43 §4.1.9)
    assert balance_of(world) == 50000
    # A replayed callback credits nothing more.
    with in_app(world):
        world.sandbox.resend_latest_callback(_sandbox_row(world, order_id))
    world.settle()
    assert balance_of(world) == 50000
    history = signed_in(world).get(f"{world.url}/payments").text
    row = history[history.index(order_id) :]
    assert "СБП" in row[: row.index("</tr>")]


def _sandbox_row(world, order_id):
    orders = requests.get(f"{world.sandbox_url}/_sandbox/orders", timeout=5).json()
    return next(o["id"] for o in orders if o["order_id"] == order_id)


def signed_in(world):
    session = requests.Session()
    session.post(f"{world.url}/login", data={"number": "1001", "password": "demo-pass"})
    return session


def test_the_pay_page_offers_sbp_where_it_is_on(sbp_world):
    assert 'value="sbp"' in signed_in(sbp_world).get(f"{sbp_world.url}/pay").text


def test_without_sbp_the_pay_page_takes_cards_only(make_world):
    card_only = make_world(fiscal=True)
    session = signed_in(card_only)
    assert 'value="sbp"' not in session.get(f"{card_only.url}/pay").text
    # Asked for anyway, it is a card payment: no PaymentTypeLimits.
    page = session.post(f"{card_only.url}/pay", data={"amount": "500", "method": "sbp"})
    assert page.status_code == 200 and "Order_IDP" in page.text
    assert "PaymentTypeLimits" not in page.text


def test_a_card_payment_beside_sbp_stays_a_card_payment(sbp_world):
    order_id, _, _ = pay_by_card(sbp_world, "500")
    sbp_world.settle()
    assert transaction_of(sbp_world, order_id).payment_type == "card"


# -- refunds -------------------------------------------------------------------------


def test_an_sbp_refund_stays_pending_until_uniteller_settles_it(sbp_world):
    world = sbp_world
    order_id, _, _, _ = pay_by_sbp(world, "500")
    world.settle()
    with in_app(world):
        made = refunds.start_refund(transaction_of(world, order_id), None, None)
    # The answer said Paid: the NSPK makes the refund later (v1.43 §4.5.2.4).
    assert made.status == "pending"
    assert balance_of(world) == 50000
    assert "Возврат в обработке" in signed_in(world).get(f"{world.url}/payments").text

    def settled():
        with in_app(world):
            return Refund.get_by_id(made.id).status == "done"

    wait_for(settled)
    world.settle()
    transaction = transaction_of(world, order_id)
    assert transaction.status == "canceled" and not transaction.needs_review
    assert balance_of(world) == 0
    with in_app(world):
        # The money went back as the refund (the billing hears refund.completed),
        # not as a reversal of the payment.
        kinds = [e.kind for e in LedgerEntry.select().order_by(LedgerEntry.id)]
        assert kinds == ["credit", "refund"]


def test_an_sbp_payment_is_refunded_in_full_only(sbp_world):
    order_id, _, _, _ = pay_by_sbp(sbp_world, "500")
    sbp_world.settle()
    with in_app(sbp_world):
        with pytest.raises(refunds.RefundRefused) as refused:
            refunds.start_refund(transaction_of(sbp_world, order_id), 20000, None)
        assert refused.value.message == "sbp_partial"
        assert not Refund.select().exists()


# -- autopay -------------------------------------------------------------------------


def test_an_sbp_autopay_charge_is_made_on_the_bound_account(sbp_world, run_jobs):
    world = sbp_world
    bind_order, _ = bind_autopay(world, "weekly", "300", weekday=2, method="sbp")
    assert transaction_of(world, bind_order).payment_type == "sbp"
    daily_run(world, next_weekday(2), run_jobs)
    world.settle()
    with in_app(world):
        (charge,) = AutopayCharge.select()
        assert charge.status == "succeeded"
        assert charge.transaction.payment_type == "sbp"
    assert balance_of(world) == 60000


def test_a_revoked_sbp_binding_suspends_autopay_with_a_notice(sbp_world, run_jobs):
    world = sbp_world
    bind_order, _ = bind_autopay(world, "weekly", "300", weekday=2, method="sbp")
    revoked = requests.post(
        f"{world.sandbox_url}/_sandbox/orders/{bind_order}/revoke-sbp-binding",
        timeout=5,
    )
    assert revoked.status_code == 200
    daily_run(world, next_weekday(2), run_jobs)
    world.settle()
    with in_app(world):
        (charge,) = AutopayCharge.select()
        assert charge.status == "failed"
        assert Autopay.get().state == "suspended"
        (notice,) = Notice.select().where(Notice.kind == "autopay_suspended")
        assert "СБП" in shown(notice.text)
    assert balance_of(world) == 30000


def test_an_sbp_charge_the_bank_answers_late_is_credited_once(sbp_world, run_jobs):
    world = sbp_world
    bind_autopay(world, "weekly", "300", weekday=2, method="sbp")
    world.faults(sbp_bank_silent=1)
    daily_run(world, next_weekday(2), run_jobs)  # answered 28: not known yet
    faults = requests.get(f"{world.sandbox_url}/_sandbox/faults", timeout=5).json()
    assert faults["sbp_bank_silent"] == 0  # the charge met the silent bank
    world.settle()  # the bank's answer comes, and its callback

    def succeeded():
        with in_app(world):
            return AutopayCharge.get().status == "succeeded"

    wait_for(succeeded)
    assert balance_of(world) == 60000
    with in_app(world):
        assert Transaction.select().where(Transaction.kind == "recurrent").count() == 1


# -- the sandbox refuses what Uniteller refuses --------------------------------------


def _signed(world, shop, **extra):
    fields = {
        "Shop_IDP": shop["shop_id"],
        "Order_IDP": "SBP-1",
        "Subtotal_P": "100.00",
        "URL_RETURN_OK": "https://cabinet.test/ok",
        **extra,
    }
    fields["Signature"] = sandbox_pay_signature(fields, shop["password"])
    return fields


def test_the_sandbox_takes_sbp_only_on_the_fiscal_form(world, shop):
    page = requests.post(
        f"{world.sandbox_url}/pay/",
        data=_signed(world, shop, PaymentTypeLimits='{"13":[100.00,100.00]}'),
        timeout=5,
    ).text
    assert "<!-- MERCHANT ERROR: Payment type not allowed -->" in page


@pytest.mark.parametrize(
    "limits", ["13", '{"13":"100.00"}', '{"99":[100.00]}', "[]", '{"13":[]}']
)
def test_the_sandbox_refuses_a_malformed_payment_type_limits(world, shop, limits):
    page = requests.post(
        f"{world.sandbox_url}/pay/",
        data=_signed(world, shop, PaymentTypeLimits=limits),
        timeout=5,
    ).text
    assert f"MERCHANT ERROR: Bad PaymentTypeLimits parameter value {limits}" in page


def test_the_sandbox_refuses_payment_type_limits_left_out_of_the_signature(world, shop):
    fields = _signed(world, shop)
    fields["PaymentTypeLimits"] = '{"1":[100.00,100.00]}'
    page = requests.post(f"{world.sandbox_url}/pay/", data=fields, timeout=5).text
    assert "MERCHANT ERROR: Signature is not valid" in page


# -- the console ---------------------------------------------------------------------


def test_the_console_refuses_sbp_without_receipts_and_saves_it_with_them(
    client,
    staff,
):
    console_login(client)
    answer = client.post(
        "/console/instances/isp/configs/new", data={**NEW_CONFIG, "sbp": "y"}
    )
    assert answer.status_code == 400
    assert "только с чеками 54-ФЗ" in answer.get_data(as_text=True)
    fiscal = {
        **NEW_CONFIG,
        "fiscal": "y",
        "fiscal_taxmode": "1",
        "fiscal_vat": "-1",
        "fiscal_place": "https://cabinet.test",
        "sbp": "y",
    }
    answer = client.post("/console/instances/isp/configs/new", data=fiscal)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    with in_app(client.application):
        made = ModuleConfiguration.get(ModuleConfiguration.name == "reserve")
    assert made.params["sbp"] == "yes" and made.params["sbp_autopay"] == "no"
