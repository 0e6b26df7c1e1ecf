"""The subscriber's forms: the amount to pay, autopay's settings, a confirmation."""

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, NumberRange, Optional

from ..labels import AUTOPAY_MODE_LABELS
from ..webforms import Form
from ..wording import WEEKDAYS


class PayForm(Form):
    """The amount to pay (and, when a receipt has nowhere to go, where to send it)."""

    amount = StringField(
        _l("Amount, ₽"), validators=[DataRequired(_l("Enter an amount."))]
    )
    contact = StringField(_l("E-mail or phone for the receipt"))
    # Offered only where the configuration takes SBP; anything else means card.
    method = RadioField(
        _l("How to pay"),
        choices=[
            SelectChoice("card", _l("Bank card")),
            SelectChoice("sbp", _l("SBP (Faster Payments)")),
        ],
        default="card",
        validate_choice=False,
    )


class QuickPayForm(Form):
    """Pay without signing in: the contract number, the amount, maybe a contact."""

    number = StringField(
        _l("Contract number"),
        # No length check of its own: a malformed number gets the one refusal.
        validators=[DataRequired(_l("Enter the contract number."))],
    )
    amount = StringField(
        _l("Amount, ₽"), validators=[DataRequired(_l("Enter an amount."))]
    )
    contact = StringField(_l("E-mail or phone for the receipt"))
    # QUICK_PAY_SHOW_NAME: the number whose masked name the payer has seen.
    confirmed = HiddenField()


AUTOPAY_ERRORS = {
    "mode_not_allowed": _l("This mode is not available."),
    "bad_weekday": _l("Choose a day of the week."),
    "bad_day": _l("Choose a day of the month from 1 to 31."),
}


def choices(pairs):
    """Build WTForms choices from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


class AutopayForm(Form):
    """Autopay's mode and parameters, the password again, and consent."""

    # Offered only where the configuration takes SBP subscriptions.
    method = RadioField(
        _l("Pay the charges by"),
        choices=[
            SelectChoice("card", _l("Bank card")),
            SelectChoice("sbp", _l("SBP (a bound bank account)")),
        ],
        default="card",
        validate_choice=False,
    )
    mode = RadioField(
        _l("Mode"),
        choices=choices(AUTOPAY_MODE_LABELS.items()),
        validators=[DataRequired(_l("Choose a mode."))],
    )
    weekday = SelectField(
        _l("Day of the week"),
        coerce=int,
        choices=choices(enumerate(WEEKDAYS)),
        default=0,
    )
    day_of_month = IntegerField(
        _l("Day of the month"), default=1, validators=[Optional(), NumberRange(1, 31)]
    )
    amount = StringField(
        _l("Amount, ₽"), validators=[DataRequired(_l("Enter an amount."))]
    )
    contact = StringField(_l("E-mail or phone for the receipt"))
    password = PasswordField(
        _l("Your password, to confirm"),
        validators=[DataRequired(_l("Enter your password."))],
    )
    consent = BooleanField(
        validators=[
            DataRequired(_l("Autopay needs your consent to recurring charges."))
        ]
    )


class ConfirmForm(Form):
    """The password again, and the amount of the payment with the new card."""

    password = PasswordField(validators=[DataRequired()])
    amount = StringField(validators=[DataRequired()])
