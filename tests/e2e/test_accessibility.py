"""axe-core on every subscriber and console page, in Russian and in English."""

import pytest

from tests.helpers import (
    ADMIN,
    CONSOLE_PAGES,
    ERROR_PAGES,
    PUBLIC_PAGES,
    SUBSCRIBER_PAGES,
    seed_pages,
    shot,
)

pytestmark = pytest.mark.browser


def _violations(page, axe):
    """axe-core's violations on the page, one line each (rule, impact, where)."""
    results = axe.run(page).response
    return [
        f"{page.url}: {rule['id']} ({rule['impact']}) "
        + "; ".join(
            " ".join(node["target"]) + " " + node["failureSummary"].splitlines()[-1]
            for node in rule["nodes"][:3]
        )
        for rule in results["violations"]
    ]


def _visit(page, axe, base, path, values):
    answer = page.goto(base + path.format(**values))
    if "/monitor" in path:  # its summary comes in after the page (hx-trigger=load)
        page.wait_for_load_state("networkidle")
    assert answer.status == ERROR_PAGES.get(path, 200), page.url
    return _violations(page, axe)


def _submit(page, axe, selector, value):
    """Send the page's form with `value` in `selector`: the page with its error."""
    page.fill(selector, value)
    page.click("main button[type=submit]")
    page.wait_for_selector(f"{selector}[aria-invalid=true]")
    return _violations(page, axe)


def _log_in(page, base, path, who, secret, field):
    page.goto(f"{base}{path}")
    page.fill(field, who)
    page.fill("#password", secret)
    page.click("main button[type=submit]")
    page.wait_for_load_state("networkidle")


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_page_has_no_axe_violation(page, autopay_world, run_jobs, lang):
    world = autopay_world
    from axe_playwright_python.sync_playwright import Axe

    values = seed_pages(world, run_jobs)
    axe, found = Axe(), []
    page.goto(f"{world.url}/login")
    if lang == "en":
        page.click("header button:has-text('English')")
        page.wait_for_load_state("networkidle")
    assert page.locator("html").get_attribute("lang") == lang
    for path in PUBLIC_PAGES:
        found += _visit(page, axe, world.url, path, values)
    page.goto(f"{world.url}/login")
    page.fill("#number", "1001")
    found += _submit(page, axe, "#password", "wrong")
    _log_in(page, world.url, "/login", "1001", "demo-pass", "#number")
    for path in SUBSCRIBER_PAGES:
        found += _visit(page, axe, world.url, path, values)
    shot(page, f"a11y-{lang}-subscriber-forbidden")
    page.goto(f"{world.url}/pay")
    found += _submit(page, axe, "#amount", "abc")
    shot(page, f"a11y-{lang}-subscriber-pay-error")
    page.goto(f"{world.url}/")
    shot(page, f"a11y-{lang}-subscriber-home")
    _log_in(page, world.url, "/console/login", ADMIN[0], ADMIN[1], "#login")
    for path in CONSOLE_PAGES:
        found += _visit(page, axe, world.url, path, values)
    page.goto(f"{world.url}/console/transactions/{values['order_id']}")
    shot(page, f"a11y-{lang}-console-transaction")
    assert not found, "\n".join(found)
