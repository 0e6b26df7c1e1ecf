"""Tell subscribers what their autopay did: the notices and how they are sent."""

from flask import current_app
from flask_babel import lazy_gettext as _l

from ..messages import keep
from ..models import Notice
from ..money import format_human
from ..queueing import enqueue


def notify(contract, kind, text):
    """Leave a notice in the cabinet, and e-mail it when SMTP is set up."""
    # Kept as the message and its values: read in the reader's language.
    notice = Notice.create(contract=contract, kind=kind, text=keep(text))
    if current_app.config["SMTP_HOST"] and contract.email:
        enqueue("email_notice", notice.id)
    return notice


def autopay_active(contract, order_id):
    """Say that autopay is on and which card payment it charges through."""
    return notify(
        contract,
        "autopay_active",
        _l(
            "Autopay is on. Card payment %(order)s will be used for future charges.",
            order=order_id,
        ),
    )


def autopay_off(contract):
    """Say that autopay is off and charges no more."""
    return notify(
        contract,
        "autopay_off",
        _l("Autopay is off. No further charges will be made."),
    )


def reminder(contract, day, amount):
    """Say that autopay will charge an amount on a coming day."""
    return notify(
        contract,
        "autopay_reminder",
        _l(
            "On %(day)s autopay will charge %(amount)s ₽ to your card.",
            day=day.strftime("%d.%m.%Y"),
            amount=format_human(amount),
        ),
    )


def charge_succeeded(contract, amount):
    """Say that autopay charged an amount."""
    return notify(
        contract,
        "charge_succeeded",
        _l("Autopay charged %(amount)s ₽ to your card.", amount=format_human(amount)),
    )


def charge_failed(contract, amount, reason, retrying):
    """Say that a charge was declined, and whether it is tried again tomorrow."""
    if retrying:
        text = _l(
            "Autopay could not charge %(amount)s ₽ (%(reason)s). "
            "We will try again tomorrow.",
            amount=format_human(amount),
            reason=reason,
        )
    else:
        text = _l(
            "Autopay could not charge %(amount)s ₽ (%(reason)s).",
            amount=format_human(amount),
            reason=reason,
        )
    return notify(contract, "charge_failed", text)


def autopay_suspended(contract, reason, sbp=False):
    """Say that autopay is paused until the subscriber brings a new card (or binds
    an SBP account again: the bank may unbind it unseen, SBP v04 §9.1)."""
    if sbp:
        text = _l(
            "Autopay is paused: the bank refused the charge on the account bound "
            "through SBP (%(reason)s); it may have been unbound in the bank's app. "
            "Please set autopay up again and bind the account anew.",
            reason=reason,
        )
    else:
        text = _l(
            "Autopay is paused: the card was declined (%(reason)s). "
            "Please set it up again with a new card.",
            reason=reason,
        )
    return notify(contract, "autopay_suspended", text)


def contact_required(contract, amount):
    """Say that a charge was not made for want of an e-mail or phone for its receipt."""
    return notify(
        contract,
        "contact_required",
        _l(
            "Autopay could not charge %(amount)s ₽: a receipt must be sent to "
            "your e-mail or phone, and none is given. Please add one in the cabinet.",
            amount=format_human(amount),
        ),
    )
