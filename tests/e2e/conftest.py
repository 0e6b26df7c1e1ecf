"""Fixtures of the browser tests: a headless Chromium page."""

import os
import shutil

import pytest

from tests.helpers import ARTIFACTS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


@pytest.fixture(scope="package")
def chromium():
    """One headless Chromium for the browser tests (each gets a context of its own)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A fresh page in a context of its own (no cookies or storage of another
    test); screenshots go to test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    context = chromium.new_context(
        viewport={"width": 1100, "height": 800}, locale="ru-RU"
    )
    yield context.new_page()
    context.close()
