"""A subscriber finds the receipt of a payment in the history (headless Chromium)."""

import pytest

from cabinet import configurations, fiscal, payments
from cabinet.models import Contract, ModuleInstance, Transaction
from tests.helpers import FISCAL_PROFILE, fiscalized, in_app, shot, signed_callback

pytestmark = pytest.mark.browser


def test_the_receipt_link_is_in_the_history(page, world, shop):
    with in_app(world):
        configuration = ModuleInstance.by_code("isp").active_configuration()
        profile = dict(item.split("=", 1) for item in FISCAL_PROFILE)
        configurations.update_configuration(
            configuration,
            {
                **configuration.params,
                **profile,
                "fiscal_gateway_url": world.sandbox_url,
            },
        )
        contract = Contract.by_number("1001")
        contract.email = "ivanov@example.com"
        contract.save()
        transaction, form = payments.start_payment(
            contract, 50000, "http://ok.test", "http://no.test"
        )
        payments.receive_callback(
            "isp", signed_callback(transaction.order_id, "paid", shop["password"])
        )
        receipt = fiscalized(
            fiscal.decode(form.fields["Receipt"]),
            "F-100",
            link="https://check.ofd.test/F-100",
        )
        fiscal.record_documents(
            Transaction.get_by_id(transaction.id), [receipt], "callback"
        )
    page.set_viewport_size({"width": 360, "height": 780})
    page.goto(f"{world.url}/login")
    page.fill("#number", "1001")
    page.fill("#password", "demo-pass")
    page.click("main button[type=submit]")
    page.wait_for_selector("#balance")
    page.goto(f"{world.url}/payments")
    link = page.locator("a.receipt-link")
    assert link.get_attribute("href") == "https://check.ofd.test/F-100"
    assert "ivanov@example.com" in page.inner_text("table")
    shot(page, "receipt-1-history-phone")
    page.click("text=English")
    page.wait_for_selector("a.receipt-link >> text=Receipt")
    shot(page, "receipt-2-history-en")
