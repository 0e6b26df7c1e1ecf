"""What a subscriber reads: refunds, declines and autopay in words, both languages."""

from datetime import date
from types import SimpleNamespace

import pytest
import requests
from flask_babel import force_locale

from cabinet import configurations, refunds
from cabinet.messages import shown
from cabinet.models import Autopay, AutopayCharge, Contract, Notice, Transaction
from cabinet.subscriber.words import autopay_rule, payment_state
from tests.helpers import (
    ALL_MODES,
    declined_payment,
    in_app,
    login,
    new_payment,
    paid_payment,
    pay_by_card,
)

# Uniteller's words no subscriber should read: codes and merchant instructions.
JARGON = ("AS10", "AS998", "F01", "прекратите", "Отказ в авторизации")


@pytest.fixture
def readers(make_app, demo):
    """A logged-in subscriber 1001 reading in Russian and one reading in English."""
    # An app of its own: each request gets its own context, so its own language.
    app = make_app()
    clients = {}
    for lang in ("ru", "en"):
        clients[lang] = app.test_client()
        clients[lang].post(f"/lang/{lang}", data={"next": "/"})
        login(clients[lang])
    return clients


def page(readers, path, lang):
    return readers[lang].get(path).get_data(as_text=True)


@pytest.mark.parametrize(
    "lang, words",
    [
        ("ru", "Возвращено 100,00 из 500,00"),
        ("en", "Refunded 100,00 of 500,00"),
    ],
)
def test_a_partial_refund_reads_in_the_history_and_on_the_dashboard(
    readers, demo, lang, words
):
    paid_payment(demo["contract"], 50000, refunded=10000)
    assert words in page(readers, "/payments", lang)
    assert words in page(readers, "/", lang)


def test_a_whole_refund_reads_refunded_and_its_page_lists_it(readers, demo):
    paid = paid_payment(demo["contract"], 50000, refunded=50000)
    assert "Возвращён" in page(readers, "/payments", "ru")
    details = page(readers, f"/payments/{paid.order_id}", "ru")
    assert "Возвращён" in details and "500,00 ₽ возвращено на карту" in details
    assert "500,00 ₽ returned to the card" in page(
        readers, f"/payments/{paid.order_id}", "en"
    )


DECLINES = [
    # (Response_Code, Uniteller's Message, Error_Code, ru reason, ru advice, en advice)
    ("AS102", "Недостаточно средств", "", "недостаточно средств", "другую карту",
     "another card"),
    ("AS100", "Отказ в авторизации", "", "банк отказал в оплате", "Обратитесь в банк",
     "Contact the bank"),
    ("AS104", "Неверный срок действия карты", "", "картой нельзя оплатить",
     "Попробуйте другую карту", "Try another card"),
    ("AS998", "F01: карта заблокирована, прекратите списания", "", "картой нельзя",
     "Попробуйте другую карту", "Try another card"),
    ("", "", "F01", "картой нельзя", "Попробуйте другую карту", "Try another card"),
    ("AS109", "Превышено число неуспешных рекуррентных попыток за сутки", "",
     "сегодня было слишком много попыток", "Попробуйте завтра", "Try again tomorrow"),
    ("AS777", "Что-то неведомое", "", "платёж отклонён", "Попробуйте ещё раз",
     "Try again"),
]  # fmt: skip


@pytest.mark.parametrize("code, message, error, reason, advice, advice_en", DECLINES)
def test_each_class_of_decline_reads_as_advice_without_codes(
    readers, demo, code, message, error, reason, advice, advice_en
):
    declined = declined_payment(demo["contract"], code, message, error)
    history = page(readers, "/payments", "ru")
    assert f"Не оплачен: {reason}" in history
    details = page(readers, f"/payments/{declined.order_id}", "ru")
    assert advice in details
    assert advice_en in page(readers, f"/payments/{declined.order_id}", "en")
    status = page(readers, f"/pay/status/{declined.order_id}", "ru")
    assert "Платёж не прошёл: " + reason in status and advice in status
    for text in (history, status):
        assert not [word for word in JARGON if word in text]


def test_an_abandoned_order_reads_not_completed_and_an_open_one_waiting(readers, demo):
    lost = new_payment(demo["contract"], 20000)
    lost.__class__.update(status="expired").where(
        lost.__class__.id == lost.id
    ).execute()
    new_payment(demo["contract"], 30000)
    history = page(readers, "/payments", "ru")
    assert "Не завершён" in history and "Ожидает оплаты" in history
    history = page(readers, "/payments", "en")
    assert "Not completed" in history and "Waiting for payment" in history


def weekly(weekday):
    return SimpleNamespace(mode="weekly", weekday=weekday, amount=30000)


@pytest.mark.parametrize(
    "autopay, configuration, ru, en",
    [
        (weekly(0), None, "каждый понедельник 300,00 ₽", "every Monday, 300,00 ₽"),
        (weekly(2), None, "каждую среду 300,00 ₽", "every Wednesday, 300,00 ₽"),
        (weekly(6), None, "каждое воскресенье 300,00 ₽", "every Sunday, 300,00 ₽"),
        (
            SimpleNamespace(mode="monthly", day_of_month=5, amount=30000),
            None,
            "каждый месяц 5-го числа 300,00 ₽",
            "every month on day 5, 300,00 ₽",
        ),
        (
            SimpleNamespace(mode="automatic", amount=None),
            SimpleNamespace(
                params={"auto_threshold": "100.00", "auto_target": "500.00"}
            ),
            "если баланс ниже 100,00 ₽ — пополнить до 500,00 ₽",
            "if the balance is below 100,00 ₽, top it up to 500,00 ₽",
        ),
        (
            SimpleNamespace(mode="automatic", amount=None),
            SimpleNamespace(params={}),
            "когда и сколько списать, решает провайдер",
            "the provider decides when and how much to charge",
        ),
    ],
)
def test_each_autopay_mode_reads_as_a_rule(app, autopay, configuration, ru, en):
    with app.test_request_context():
        with force_locale("ru"):
            assert autopay_rule(autopay, configuration) == ru
        with force_locale("en"):
            assert autopay_rule(autopay, configuration) == en


def test_a_state_names_nothing_but_words(app):
    declined = SimpleNamespace(
        status="failed",
        amount=50000,
        response_code="AS998",
        error_code=None,
        message="F01: карта заблокирована, прекратите списания",
    )
    with app.test_request_context(), force_locale("ru"):
        state = payment_state(declined)
    assert state.label == "Не оплачен: картой нельзя оплатить"
    assert state.advice == "Попробуйте другую карту."


def test_the_dashboard_shows_autopay_in_one_look(readers, demo):
    paid = paid_payment(demo["contract"], 30000)
    Autopay.create(
        contract=demo["contract"],
        mode="monthly",
        day_of_month=5,
        amount=30000,
        state="active",
        parent=paid,
    )
    home = page(readers, "/", "ru")
    assert "Включён" in home and "каждый месяц 5-го числа 300,00 ₽" in home
    assert "Следующее списание: 05." in home
    assert "карта вашего платежа от" in home
    assert "every month on day 5, 300,00 ₽" in page(readers, "/", "en")


def test_a_suspended_autopay_says_why_and_what_to_do(readers, demo):
    paid = paid_payment(demo["contract"], 30000)
    autopay = Autopay.create(
        contract=demo["contract"],
        mode="weekly",
        weekday=0,
        amount=30000,
        state="suspended",
        parent=paid,
        suspended_reason="F01: карта заблокирована, прекратите списания",
    )
    AutopayCharge.create(
        autopay=autopay,
        period="2026-W48",
        due_on=date(2026, 11, 23),
        amount=30000,
        status="failed",
        result_code="AS998",
        result_message="F01: карта заблокирована, прекратите списания",
    )
    home = page(readers, "/", "ru")
    assert "Списания приостановлены: карта отклонена (картой нельзя оплатить)" in home
    assert "Оплатите один раз другой картой" in home
    assert "F01" not in home and "прекратите" not in home
    english = page(readers, "/", "en")
    assert "Charges are paused: the card was declined (the card cannot be used)" in (
        english
    )


def test_a_payment_page_is_its_owner_s_only(readers, demo):
    mine = paid_payment(demo["contract"], 50000)
    theirs = paid_payment(demo["other"], 50000)
    assert readers["ru"].get(f"/payments/{mine.order_id}").status_code == 200
    assert readers["ru"].get(f"/payments/{theirs.order_id}").status_code == 404


def test_a_refund_done_leaves_a_notice_and_the_dashboard_shows_both(world):
    order_id, _, _ = pay_by_card(world, "500")
    world.settle()
    with in_app(world):
        refunds.start_refund(Transaction.by_order_id(order_id), 10000, None)
        contract = Contract.by_number("1001")
        notice = Notice.get(Notice.contract == contract, Notice.kind == "refund")
        text = shown(notice.text)  # in the default language, Russian
    assert text.startswith("100,00 ₽ вашего платежа на 500,00 ₽ от ")
    session = requests.Session()
    session.post(f"{world.url}/login", data={"number": "1001", "password": "demo-pass"})
    home = session.get(f"{world.url}/").text
    assert text in home and "Возвращено 100,00 из 500,00" in home


def test_turning_autopay_off_asks_first_and_leaves_a_notice(readers, demo):
    main = configurations.get_configuration(demo["instance"], "main")
    modes = dict(mode.split("=") for mode in ALL_MODES)
    configurations.update_configuration(main, {**main.params, **modes})
    Autopay.create(
        contract=demo["contract"],
        mode="weekly",
        weekday=0,
        amount=30000,
        state="active",
        parent=paid_payment(demo["contract"], 30000),
    )
    settings = page(readers, "/autopay", "ru")
    assert 'data-confirm="Выключить автоплатёж? Списаний больше не будет."' in settings
    readers["ru"].post("/autopay/off")
    assert shown(Notice.get(Notice.kind == "autopay_off").text) == (
        "Автоплатёж выключен. Списаний больше не будет."
    )


def test_the_set_up_says_the_first_payment_is_charged_now(readers, demo):
    main = configurations.get_configuration(demo["instance"], "main")
    modes = dict(mode.split("=") for mode in ALL_MODES)
    configurations.update_configuration(main, {**main.params, **modes})
    assert "Первый платёж на указанную сумму списывается сейчас" in page(
        readers, "/autopay", "ru"
    )
    assert "The first payment, of the amount above, is charged now" in page(
        readers, "/autopay", "en"
    )


def test_the_history_filter_speaks_words_and_open_covers_every_wait(readers, demo):
    waiting = new_payment(demo["contract"], 30000)
    waiting.__class__.update(status="waiting").where(
        waiting.__class__.id == waiting.id
    ).execute()
    new_payment(demo["contract"], 40000)
    paid_payment(demo["contract"], 50000)
    history = page(readers, "/payments", "ru")
    assert '<option value="open" >Ожидает оплаты</option>' in history
    assert "Авторизован" not in history
    shown = page(readers, "/payments?status=open", "ru")
    assert "300,00" in shown and "400,00" in shown and "500,00" not in shown
