"""An operator's round in the console in a real browser (headless Chromium)."""

import pytest

from cabinet import accounts
from cabinet.models import Contract
from tests.helpers import in_app, pay_by_card, shot

pytestmark = pytest.mark.browser


def test_operator_finds_a_payment_refunds_part_and_watches_the_monitor(page, world):  # noqa: F811
    order_id, _, _ = pay_by_card(world, "500")
    pay_by_card(world, "300")
    world.settle()
    with in_app(world):
        accounts.add_operator("admin", "admin-password", admin=True)
    page.goto(f"{world.url}/console/contracts")
    page.wait_for_selector("#login")
    shot(page, "console-1-login")
    page.fill("#login", "admin")
    page.fill("#password", "admin-password")
    page.click("main button[type=submit]")
    page.wait_for_selector("#contract-list")
    page.fill("input[name=q]", "иванов")
    page.wait_for_selector("#contract-list >> text=1001")
    shot(page, "console-2-contracts")
    page.click("#contract-list >> text=1001")
    page.wait_for_selector("#contract-transactions")
    assert "800,00" in page.inner_text("#balance")
    shot(page, "console-3-contract")
    page.click(f"text={order_id}")
    page.wait_for_selector("#refund-form")
    page.fill("#amount", "150")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#refund-form button[type=submit]")
    page.wait_for_selector("text=Возврат 150,00 ₽ выполнен")
    shot(page, "console-4-transaction")
    with in_app(world):
        assert Contract.by_number("1001").balance == 65000
    page.click("text=Монитор транзакций")
    page.wait_for_selector("#paid-chart")
    page.select_option("select[name=status]", "paid")
    page.wait_for_url("**status=paid**")
    assert "Оплачен" in page.inner_text("#monitor-table")
    shot(page, "console-5-monitor")
    page.click("text=Экземпляры модуля")
    page.click("text=Конфигурации")
    page.click("#configuration-1 >> text=Проверить соединение")
    page.wait_for_selector("text=Соединение в порядке")
    shot(page, "console-6-instance")
    page.click("text=Задачи")
    page.wait_for_selector(".task")
    shot(page, "console-7-tasks")
    page.click("text=Журнал")
    page.wait_for_selector("#audit-table")
    assert "транзакция: возврат" in page.inner_text("#audit-table")
    shot(page, "console-8-audit")


def test_operator_adds_a_billing_connector_and_sees_its_deliveries(page, world):  # noqa: F811
    pay_by_card(world, "500")
    world.settle()
    with in_app(world):
        accounts.add_operator("admin", "admin-password", admin=True)
    page.goto(f"{world.url}/console/instances/isp/billing")
    page.fill("#login", "admin")
    page.fill("#password", "admin-password")
    page.click("main button[type=submit]")
    page.wait_for_url("**/billing")
    page.fill("input[name=name]", "books")
    page.fill("input[name=url]", f"{world.sandbox_url}/billing/osmp")
    page.fill("input[name=login]", "cabinet")
    page.fill("input[name=password]", "billing-password")
    page.click("#connector-form button[type=submit]")
    page.wait_for_selector("text=books")
    shot(page, "console-9-billing")
    page.set_viewport_size({"width": 360, "height": 800})
    shot(page, "console-10-billing-phone")
    page.set_viewport_size({"width": 1100, "height": 800})
    page.click("text=English")
    page.wait_for_selector("text=Add or edit a connector")
    shot(page, "console-11-billing-en")
    page.goto(f"{world.url}/console/billing/attention")
    shot(page, "console-12-billing-attention-en")
