"""Wording both the subscriber's cabinet and the console show: amounts, weekdays."""

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from .money import format_human

# The codes cabinet.money.parse_amount raises, as a person reads them.
AMOUNT_ERRORS = {
    "empty": _l("Enter an amount."),
    "not_a_number": _l("Enter an amount in roubles, for example 500 or 500,50."),
    "too_many_decimals": _l("An amount has at most two digits after the comma."),
    "not_positive": _l("The amount must be greater than zero."),
    "too_long": _l("An amount has at most 12 digits before the comma."),
}
WEEKDAYS = [
    _l("Monday"),
    _l("Tuesday"),
    _l("Wednesday"),
    _l("Thursday"),
    _l("Friday"),
    _l("Saturday"),
    _l("Sunday"),
]


# Asked for more than the limits allow, as the subscriber reads it.
TOO_MANY_PAY_ATTEMPTS = _l("Too many payment attempts. Try again in a minute.")
CONTACT_REQUIRED = _l("Enter an e-mail or a phone number for the receipt.")
BAD_CONTACT = _l(
    "That is neither an e-mail address nor a phone number (e.g. +7 900 123-45-67)."
)


# Uniteller's Response_Code (v1.43 appendix) -> the class of a decline. The
# codes and Uniteller's own messages stay for operators: some are instructions
# to the merchant ("F01: … прекратите списания"), not words for a payer.
DECLINE_CLASSES = {
    "AS102": "funds",
    "AS101": "card",
    "AS104": "card",
    "AS108": "card",
    "AS109": "later",
    "AS100": "bank",
}
DECLINE_REASONS = {
    "funds": _l("not enough money on the card"),
    "card": _l("the card cannot be used"),
    "bank": _l("the bank declined the payment"),
    "later": _l("too many attempts today"),
    "other": _l("the payment was declined"),
}
DECLINE_ADVICE = {
    "funds": _l("Top up the card or try another card."),
    "card": _l("Try another card."),
    "bank": _l("Contact the bank that issued the card, or try another card."),
    "later": _l("Try again tomorrow."),
    "other": _l("Try again, or try another card."),
}


def decline_class(response_code, error_code="", message=""):
    """Name the class of a decline from what Uniteller said: funds, card, bank, …"""
    code = (response_code or "").upper()
    # Uniteller's stop code (F01, with AS998): the card will not pay again.
    if "F01" in (error_code or "").upper() or "F01" in (message or "").upper():
        return "card"
    return DECLINE_CLASSES.get(code, "other")


def decline_reason(response_code, error_code="", message=""):
    """Say why a card was declined, in words a payer reads (no code, no jargon)."""
    return DECLINE_REASONS[decline_class(response_code, error_code, message)]


def too_many_open(exc):
    """Say how many unfinished payments block a new one, and for how long."""
    return _l(
        "You have %(count)d unfinished payments. Finish one of them, "
        "or try again in %(minutes)d min.",
        count=exc.details["limit"],
        minutes=max(1, -(-exc.details["seconds"] // 60)),
    )


def out_of_range(exc):
    """Say which amounts are allowed, from an error carrying `low` and `high`."""
    return _l(
        "The amount must be from %(low)s to %(high)s ₽.",
        low=format_human(exc.details["low"]),
        high=format_human(exc.details["high"]),
    )


def readable(reason):
    """The reason of an error page if it reads in the page's language, else "".

    Services give English reasons to the CLI and the API; on a Russian page such
    a reason is dropped and the page's translated title says what happened.
    """
    russian = any("а" <= letter.lower() <= "я" for letter in reason)
    return reason if russian == (str(get_locale()) == "ru") else ""
