"""From the ISP's site into the cabinet in a browser: a button, the handoff, pay."""

import html

import pytest
import requests
from werkzeug.wrappers import Request, Response

from cabinet.api_tokens import create_token
from cabinet.models import Transaction
from cabinet.uniteller.sandbox.testing import serve_in_thread
from tests.helpers import in_app, shot

pytestmark = pytest.mark.browser


class IspSite:
    """The ISP's own personal-account site: a page with a button, and its server.

    The button leads to the ISP's server, which asks the cabinet for a sign-in
    link (server to server, with its API token) and sends the browser there.
    """

    def __init__(self, cabinet_url, token):
        self.cabinet_url = cabinet_url
        self.token = token
        self.links = []  # every link the site obtained

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path == "/go":
            answer = requests.post(
                f"{self.cabinet_url}/api/sessions",
                json={"contract": "1001", "next": "/pay?amount=500"},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=5,
            )
            assert answer.status_code == 201, answer.text
            self.links.append(answer.json()["url"])
            response = Response(status=302, headers={"Location": self.links[-1]})
        else:
            response = Response(
                "<!doctype html><meta charset=utf-8><title>Мой провайдер</title>"
                "<h1>Личный кабинет провайдера</h1><p>Договор 1001</p>"
                f'<a id="pay" href="{html.escape("/go")}">Оплатить картой</a>',
                content_type="text/html; charset=utf-8",
            )
        return response(environ, start_response)


def test_a_button_on_the_isp_site_signs_in_and_pays(page, world):
    with in_app(world):
        token = create_token("isp-site", ["sessions"])[1]
    site = IspSite(world.url, token)
    with serve_in_thread(site) as isp:
        page.goto(isp.url)
        shot(page, "handoff-1-isp-site")
        page.click("text=Оплатить картой")
        page.wait_for_url(f"{world.url}/pay?amount=500")
        assert page.input_value("#amount") == "500"
        assert "1001" in page.inner_text("header")  # signed in, no password typed
        shot(page, "handoff-2-pay")
        page.click("text=Перейти к оплате")
        page.wait_for_selector("input[name=card_number]")
        assert page.url.startswith(world.sandbox_url)
        page.fill("input[name=card_number]", "4000 0000 0000 2487")
        page.fill("input[name=exp_month]", "12")
        page.fill("input[name=exp_year]", "35")
        page.fill("input[name=cvc]", "123")
        page.fill("input[name=holder]", "IVAN IVANOV")
        page.click("button[type=submit]")
        page.wait_for_url(f"{world.url}/pay/return/**")
        page.wait_for_selector("text=Платёж получен", timeout=15000)
        page.goto(f"{world.url}/payments")
        assert "Оплачен" in page.inner_text("#payment-table")
        assert "500,00" in page.inner_text("#payment-table")
        shot(page, "handoff-3-history")

        # The link is spent: opened again (a phone's back button), it refuses.
        page.set_viewport_size({"width": 360, "height": 740})
        refused = page.goto(site.links[0])
        assert refused.status == 410
        assert "Вернитесь на сайт провайдера" in page.inner_text("#handoff-refused")
        shot(page, "handoff-4-refused-360")
    with in_app(world):
        (transaction,) = Transaction.select()
        assert (transaction.status, transaction.amount) == ("paid", 50000)
