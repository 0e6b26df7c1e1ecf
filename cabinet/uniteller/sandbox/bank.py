"""Decide card payments: the demo's rules, or Uniteller's virtual acquirer (§3.3)."""

from dataclasses import dataclass
from datetime import date

SUCCESS_CARDS = frozenset(
    {
        "4000000000002487",
        "4000000000002420",
        "4000000000002438",
        "5000000000002443",
        "5000000000002450",
        "2200060300746821",
    }
)
DECLINE_CARDS = frozenset({"4000000000002479", "4000000000002488", "4405050300000001"})
# The virtual acquirer's one decline card and the card data it takes (v1.43 §3.3.1,
# §3.3.3): expiry 01/35, holder UNITELLER TEST, CVV 123, 10.00-100.00 roubles.
SPEC_DECLINE_CARD = "4000000000002479"
SPEC_EXPIRY = (1, 2035)
SPEC_HOLDER = "UNITELLER TEST"
SPEC_CVC = "123"
SPEC_AMOUNTS = (1000, 10000)

APPROVED = "AS000"
DECLINED = "AS100"
BAD_CARD_NUMBER = "AS101"
INSUFFICIENT_FUNDS = "AS102"
BAD_EXPIRY = "AS104"
UNITELLER_LIMIT = "AS109"
SYSTEM_ERROR = "AS998"

# Response_Code -> (Message, Recommendation) as shown in /results/.
RESPONSES = {
    APPROVED: ("Успешно", ""),
    DECLINED: ("Отказ в авторизации", "Обратитесь в банк, выпустивший карту"),
    BAD_CARD_NUMBER: ("Неверный номер карты", "Проверьте номер карты"),
    INSUFFICIENT_FUNDS: ("Недостаточно средств", "Используйте другую карту"),
    BAD_EXPIRY: ("Неверный срок действия карты", "Проверьте срок действия карты"),
    UNITELLER_LIMIT: (
        "Превышено число неуспешных рекуррентных попыток за сутки",
        "Повторите завтра",
    ),
    SYSTEM_ERROR: (
        "F01: карта заблокирована, прекратите списания",
        "Попросите плательщика оплатить другой картой",
    ),
}

# (low, high, Response_Code) in kopecks, inclusive; None code = delayed success.
AMOUNT_BANDS = (
    (37000, 37999, BAD_EXPIRY),
    (100001, 200000, INSUFFICIENT_FUNDS),
    (200001, 300000, DECLINED),
    (300001, 500000, None),
)

# The amount rules as the card form lists them.
AMOUNT_BANDS_TEXT = (
    ("370.00–379.99", "отказ: истёк срок действия карты (AS104)"),
    ("1000.01–2000.00", "отказ: недостаточно средств (AS102)"),
    ("2000.01–3000.00", "отказ в авторизации (AS100)"),
    ("3000.01–5000.00", "успех с задержкой (заказ «в обработке»)"),
)


@dataclass(frozen=True)
class Outcome:
    """What the acquirer answers: a Response_Code, possibly only after a delay."""

    code: str
    delayed: bool = False

    @property
    def approved(self) -> bool:
        """Tell whether the payment is (or will be) authorized."""
        return self.code == APPROVED


def mask(number: str) -> str:
    """Mask a card number as Uniteller shows it: 400000******2487."""
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def card_type(masked: str) -> str:
    """Name the payment system as §8.1 spells CardType (visa, mastercard, mir)."""
    return {"2": "mir", "4": "visa", "5": "mastercard"}.get(masked[:1], "")


def is_expired(exp_month: int, exp_year: int, today: date) -> bool:
    """Tell whether a card valid through exp_month/exp_year has expired."""
    return (exp_year, exp_month) < (today.year, today.month)


def judge_amount(amount_kopecks: int) -> Outcome:
    """Apply the amount bands of the old test server."""
    for low, high, code in AMOUNT_BANDS:
        if low <= amount_kopecks <= high:
            return Outcome(APPROVED, delayed=True) if code is None else Outcome(code)
    return Outcome(APPROVED)


def judge_payment(
    number: str, exp_month: int, exp_year: int, amount_kopecks: int, today: date
) -> Outcome:
    """Decide a card payment: the card first, then the amount."""
    if number not in SUCCESS_CARDS | DECLINE_CARDS:
        return Outcome(BAD_CARD_NUMBER)
    if is_expired(exp_month, exp_year, today):
        return Outcome(BAD_EXPIRY)
    if number in DECLINE_CARDS:
        return Outcome(DECLINED)
    return judge_amount(amount_kopecks)


def spec_amount_allowed(amount_kopecks: int) -> bool:
    """Tell whether the virtual acquirer takes an amount (10.00-100.00 inclusive)."""
    low, high = SPEC_AMOUNTS
    return low <= amount_kopecks <= high


def judge_spec_payment(
    number: str, exp_month: int, exp_year: int, holder: str, cvc: str
) -> Outcome:
    """Decide a card payment as the virtual acquirer: its test card data only."""
    if number not in SUCCESS_CARDS and number != SPEC_DECLINE_CARD:
        return Outcome(BAD_CARD_NUMBER)
    if (exp_month, exp_year) != SPEC_EXPIRY:
        return Outcome(BAD_EXPIRY)
    # Card forms upper-case the holder as it is typed; spaces do not count.
    if " ".join(holder.upper().split()) != SPEC_HOLDER or cvc != SPEC_CVC:
        return Outcome(DECLINED)
    if number == SPEC_DECLINE_CARD:
        return Outcome(DECLINED)
    return Outcome(APPROVED)
