"""The subscriber's cabinet as a person uses it."""

import re

from cabinet import payments
from tests.helpers import in_app, login, new_payment


def test_wrong_password_is_refused_and_right_one_logs_in(client, demo):
    response = login(client, password="wrong")
    assert response.status_code == 401
    assert "Неверный номер договора или пароль" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    assert login(client).status_code == 302
    assert client.get("/").status_code == 200


def test_login_is_throttled_after_repeated_failures(make_app, demo):
    app = make_app(LOGIN_ATTEMPTS=3)
    client = app.test_client()
    for _ in range(3):
        assert login(client, password="wrong").status_code == 401
    assert login(client).status_code == 429  # even the right password waits


def test_next_only_leads_to_our_own_paths(client, demo):
    response = client.post(
        "/login?next=https://evil.example/x",
        data={"number": "1001", "password": "demo-pass"},
    )
    assert response.headers["Location"] == "/"
    client.post("/logout")
    response = client.post(
        "/login?next=/payments", data={"number": "1001", "password": "demo-pass"}
    )
    assert response.headers["Location"] == "/payments"


def test_session_cookie_is_httponly_and_lax(client, demo):
    response = login(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_index_shows_balance_and_pay_button(client, demo):
    login(client)
    page = client.get("/").get_data(as_text=True)
    assert "0,00 ₽" in page and "/pay" in page


def test_pay_posts_a_signed_auto_submitting_form_to_the_gateway(client, demo, shop):
    login(client)
    response = client.post("/pay", data={"amount": "500,5"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'action="http://gateway.test/pay/"' in page
    order_id = re.search(r'name="Order_IDP" value="([^"]+)"', page).group(1)
    assert 'name="Subtotal_P" value="500.50"' in page
    assert "http://cabinet.test/pay/return/ok" in page
    assert "autosubmit.js" in page and shop["password"] not in page
    assert payments.transaction_of(demo["contract"], order_id).status == "new"


def test_bad_amounts_get_a_clear_message_and_create_nothing(client, demo):
    login(client)
    for amount, message in [
        ("", "Введите сумму"),
        ("-5", "больше нуля"),
        ("10.001", "двух знаков"),
        ("abc", "Введите сумму в рублях"),
        ("5", "от 10,00 до 15\u00a0000,00"),
    ]:
        response = client.post("/pay", data={"amount": amount})
        assert response.status_code == 400
        assert message in response.get_data(as_text=True), amount
    assert demo["contract"].transactions.count() == 0


def test_unlinked_contract_sees_that_card_payment_is_unavailable(client, demo):
    from cabinet import accounts

    accounts.add_contract("3001", "Unlinked", "pass-3001")
    login(client, "3001", "pass-3001")
    assert "недоступна" in client.get("/pay").get_data(as_text=True)
    assert client.post("/pay", data={"amount": "100"}).status_code == 409


def test_return_page_shows_status_and_polls_until_final(client, demo, shop):
    login(client)
    transaction = new_payment(demo["contract"])
    page = client.get(f"/pay/return/ok?Order_ID={transaction.order_id}")
    assert page.status_code == 200
    assert 'hx-trigger="load delay:500ms, every 1s"' in page.get_data(as_text=True)
    payments.apply_status(transaction.order_id, "paid", source="callback")
    fragment = client.get(
        f"/pay/status/{transaction.order_id}", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert "hx-trigger" not in fragment and "Платёж получен" in fragment


def test_return_page_never_changes_money(client, demo):
    login(client)
    transaction = new_payment(demo["contract"])
    client.get(f"/pay/return/ok?Order_ID={transaction.order_id}")
    assert transaction.__class__.get_by_id(transaction.id).status == "new"


def test_another_contracts_order_is_404(client, demo):
    theirs = new_payment(demo["other"])
    login(client)
    assert client.get(f"/pay/return/ok?Order_ID={theirs.order_id}").status_code == 404
    assert client.get(f"/pay/status/{theirs.order_id}").status_code == 404
    assert client.get("/pay/return/ok?Order_ID=nope").status_code == 404
    assert client.get("/pay/return/ok").status_code == 400


def test_history_filters_paginates_and_serves_a_fragment(make_app, demo):
    app = make_app(PAGE_SIZE=2)
    client = app.test_client()
    with in_app(app):
        made = [new_payment(demo["contract"], 1000 * (i + 1)) for i in range(3)]
        payments.apply_status(made[0].order_id, "paid", source="callback")
    login(client)
    page = client.get("/payments")
    assert "HX-Request" in page.headers["Vary"]
    assert "page=2" in page.get_data(as_text=True)
    paid = client.get("/payments?status=paid").get_data(as_text=True)
    assert made[0].order_id in paid and made[1].order_id not in paid
    fragment = client.get("/payments?status=new", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert text.lstrip().startswith('<div id="payment-table">') and "<html" not in text
    assert client.get("/payments?from=2000-01-01&to=2000-01-02").status_code == 200
    assert made[0].order_id not in client.get(
        "/payments?from=2000-01-01&to=2000-01-02"
    ).get_data(as_text=True)
    assert client.get("/payments?from=yesterday").status_code == 400
    assert client.get("/payments?status=bogus").status_code == 400


def test_expired_login_on_htmx_request_redirects_the_whole_page(client, demo):
    response = client.get("/payments", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_form_without_csrf_token_changes_nothing(make_app, demo):
    app = make_app(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    assert login(client).status_code == 400  # the login form itself is protected
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post(
        "/login", data={"number": "1001", "password": "demo-pass", "csrf_token": token}
    )
    assert client.post("/pay", data={"amount": "500"}).status_code == 400
    assert demo["contract"].transactions.count() == 0


def test_english_is_available(client, demo):
    client.post("/lang/en", data={"next": "/login"})
    assert "Log in to your account" in client.get("/login").get_data(as_text=True)


def test_each_reader_sees_the_labels_in_their_own_language(make_app, demo):
    app = make_app()
    russian, english = app.test_client(), app.test_client()
    english.post("/lang/en", data={"next": "/login"})
    payment = new_payment(demo["contract"], 50000)
    payments.apply_status(payment.order_id, "paid", source="callback")
    for client in (russian, english):  # the same process, in turn
        login(client)
    for client, words in (
        (russian, ("Оплачен", "Платежи")),
        (english, ("Paid", "Payments")),
        (russian, ("Оплачен", "Платежи")),
    ):
        page = client.get("/payments").get_data(as_text=True)
        assert all(word in page for word in words), words


def test_form_errors_are_tied_to_their_fields(autopay_world):
    """A screen reader hears which field is wrong and why (aria-describedby)."""
    client = autopay_world.app.test_client()
    login(client)
    page = client.post("/pay", data={"amount": "abc"}).get_data(as_text=True)
    field = re.search(r"<input[^>]*\bid=\"amount\"[^>]*>", page).group(0)
    assert 'aria-invalid="true"' in field
    assert 'aria-describedby="amount-error-1"' in field
    assert re.search(r'<p class="error" id="amount-error-1">[^<]+</p>', page)
    page = client.post("/autopay", data={"amount": "300"}).get_data(as_text=True)
    group = re.search(r"<fieldset[^>]*>", page).group(0)
    assert 'aria-describedby="mode-error-1"' in group
    assert 'id="mode-error-1"' in page
    assert "aria-invalid" not in client.get("/pay").get_data(as_text=True)
