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
