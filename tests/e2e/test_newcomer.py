"""A newcomer's first payment in a real browser (headless Chromium via Playwright)."""

import pytest

from cabinet.models import Contract
from tests.helpers import in_app, shot

pytestmark = pytest.mark.browser


def balance(world):
    with in_app(world):
        return Contract.by_number("1001").balance


def log_in_and_pay(page, world, amount, card, prefix):
    page.goto(f"{world.url}/login")
    shot(page, f"{prefix}-1-login")
    page.fill("#number", "1001")
    page.fill("#password", "demo-pass")
    page.click("main button[type=submit]")
    page.wait_for_selector("#balance")
    shot(page, f"{prefix}-2-home")
    page.click("text=Пополнить картой")
    page.fill("#amount", amount)
    shot(page, f"{prefix}-3-amount")
    page.click("text=Перейти к оплате")
    page.wait_for_selector("input[name=card_number]")  # the sandbox's hosted page
    assert page.url.startswith(world.sandbox_url)
    page.fill("input[name=card_number]", card)
    page.fill("input[name=exp_month]", "12")
    page.fill("input[name=exp_year]", "35")
    page.fill("input[name=cvc]", "123")
    page.fill("input[name=holder]", "IVAN IVANOV")
    shot(page, f"{prefix}-4-card-form")
    page.click("button[type=submit]")
    page.wait_for_url(f"{world.url}/pay/return/**")


def test_newcomer_pays_500_and_sees_the_balance_go_up(page, world):
    log_in_and_pay(page, world, "500", "4000 0000 0000 2487", "success")
    page.wait_for_selector("text=Платёж получен", timeout=15000)
    shot(page, "success-5-return")
    page.click("text=Вернуться в кабинет")
    assert "500,00" in page.inner_text("#balance")
    shot(page, "success-6-home")
    page.goto(f"{world.url}/payments")
    assert "Оплачен" in page.inner_text("#payment-table")
    shot(page, "success-7-history")
    assert balance(world) == 50000


def test_failed_card_shows_the_failure_and_keeps_the_balance(page, world, run_jobs):
    log_in_and_pay(page, world, "500", "4000 0000 0000 2479", "failure")
    assert "/pay/return/no" in page.url
    shot(page, "failure-5-return")
    run_jobs(world.app)  # the order check the return page asked for
    page.wait_for_selector("text=Платёж не прошёл", timeout=15000)
    shot(page, "failure-6-return-final")
    page.goto(f"{world.url}/payments")
    assert "Не оплачен" in page.inner_text("#payment-table")
    shot(page, "failure-7-history")
    assert balance(world) == 0
