"""Paying by SBP in a real browser: the choice on our page, the sandbox's QR."""

import pytest

from cabinet.models import Contract, Transaction
from tests.helpers import ALL_MODES, in_app, shot

pytestmark = pytest.mark.browser


@pytest.fixture
def sbp_world(make_world):
    """The live pair, fiscal (SBP needs receipts), with SBP on."""
    return make_world(fiscal=True, config=(*ALL_MODES, "sbp=yes"))


def test_a_subscriber_picks_sbp_sees_the_qr_and_pays(page, sbp_world):
    world = sbp_world
    page.goto(f"{world.url}/login")
    page.fill("#number", "1001")
    page.fill("#password", "demo-pass")
    page.click("main button[type=submit]")
    page.wait_for_selector("#balance")
    page.goto(f"{world.url}/pay")
    page.fill("#amount", "500")
    page.check("input[name=method][value=sbp]")
    shot(page, "sbp-1-choice")
    page.click("text=Перейти к оплате")
    page.wait_for_selector("#sbp svg")  # the sandbox's hosted page, its QR
    assert page.url.startswith(world.sandbox_url)
    assert page.locator("input[name=card_number]").count() == 0
    shot(page, "sbp-2-qr")
    page.click("#sbp-confirm")  # stands for the bank app's confirmation
    page.wait_for_url(f"{world.url}/pay/return/**")
    page.wait_for_selector("text=Платёж получен", timeout=15000)
    page.goto(f"{world.url}/payments")
    assert "СБП" in page.inner_text("#payment-table")
    shot(page, "sbp-3-history")
    with in_app(world):
        assert Contract.by_number("1001").balance == 50000
        assert Transaction.get().payment_type == "sbp"
