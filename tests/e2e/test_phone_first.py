"""Every subscriber page fits a phone (360 px) and a desktop: no sideways scrolling."""

import pytest

from cabinet import configurations
from cabinet.models import Contract
from tests.helpers import ALL_MODES, new_payment, shot, subscriber_story

pytestmark = pytest.mark.browser

SIZES = {"phone": (360, 740), "desktop": (1280, 800)}
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


def test_subscriber_pages_fit_a_phone_and_a_desktop(page, demo, live_server):
    contract = demo["contract"]
    main = configurations.get_configuration(demo["instance"], "main")
    modes = dict(mode.split("=") for mode in ALL_MODES)
    configurations.update_configuration(main, {**main.params, **modes})
    paid = subscriber_story(contract)
    waiting = new_payment(Contract.get_by_id(contract.id), 40000)
    pages = {
        "home": "/",
        "history": "/payments",
        "pay": "/pay",
        "autopay": "/autopay",
        "payment": f"/payments/{paid.order_id}",
        "return": f"/pay/return/no/{waiting.order_id}",
    }
    page.goto(f"{live_server.url}/login")
    page.fill("#number", "1001")
    page.fill("#password", "demo-pass")
    page.click("main button[type=submit]")
    page.wait_for_selector("#balance")
    too_wide = []
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        for name, path in pages.items():
            page.goto(f"{live_server.url}{path}")
            page.wait_for_selector("main h1")
            shot(page, f"phone-first-{size}-{name}")
            extra = page.evaluate(OVERFLOW)
            if extra > 0:
                too_wide.append(f"{name} at {width} px: {extra} px too wide")
    assert not too_wide
    # The history on a phone is stacked rows: the refund reads in words there.
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{live_server.url}/payments")
    text = page.inner_text("#payment-table")
    assert "Возвращено 100,00 из 500,00" in text
    assert "F01" not in text and "прекратите" not in text


def test_the_overflow_check_sees_a_page_too_wide(page, demo, live_server):
    # The check above must be able to fail: a 600 px block on a 360 px page.
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{live_server.url}/login")
    # Set through the CSSOM: the CSP refuses inline style attributes.
    page.evaluate(
        "() => { const wide = document.createElement('div');"
        " wide.style.width = '600px'; wide.style.height = '1px';"
        " document.querySelector('main').append(wide); }"
    )
    assert page.evaluate(OVERFLOW) > 0
