"""What a subscriber reads about a payment and an autopay: plain words, no codes."""

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from peewee import fn

from .. import params as module_params
from ..models import AutopayCharge, Refund
from ..money import format_human, to_kopecks
from ..wording import DECLINE_ADVICE, DECLINE_REASONS, decline_class, decline_reason

# One phrase a weekday: Russian declines "every" by the day's gender.
WEEKLY_RULES = [
    _l("every Monday, %(amount)s ₽"),
    _l("every Tuesday, %(amount)s ₽"),
    _l("every Wednesday, %(amount)s ₽"),
    _l("every Thursday, %(amount)s ₽"),
    _l("every Friday, %(amount)s ₽"),
    _l("every Saturday, %(amount)s ₽"),
    _l("every Sunday, %(amount)s ₽"),
]


# The history's status filter as a subscriber reads it (each a value it takes).
SHOWN_FILTERS = {
    "success": _l("Paid"),
    "failed": _l("Not paid"),
    "open": _l("Waiting for payment"),
    "expired": _l("Not completed"),
    "canceled": _l("Canceled"),
}


@dataclass(frozen=True)
class PaymentState:
    """A payment as the subscriber reads it: a word, a tone, a reason, advice."""

    # paid | refunded | partly_refunded | failed | waiting | unfinished | canceled
    key: str
    label: str
    tone: str  # ok | bad | wait | muted
    reason: str = ""
    advice: str = ""


def payment_state(transaction, refunded=0):
    """Describe a payment in words: refunds and declines included, codes left out."""
    status = transaction.status
    amount = transaction.amount
    if status in ("authorized", "paid", "canceled") and refunded:
        if refunded >= amount:
            return PaymentState("refunded", str(_l("Refunded")), "muted")
        text = _l(
            "Refunded %(part)s of %(whole)s",
            part=format_human(refunded),
            whole=format_human(amount),
        )
        return PaymentState("partly_refunded", str(text), "ok")
    if status in ("authorized", "paid"):
        return PaymentState("paid", str(_l("Paid")), "ok")
    if status == "failed":
        kind = decline_class(
            transaction.response_code, transaction.error_code, transaction.message
        )
        reason = str(DECLINE_REASONS[kind])
        label = str(_l("Not paid: %(reason)s", reason=reason))
        return PaymentState("failed", label, "bad", reason, str(DECLINE_ADVICE[kind]))
    if status == "canceled":
        return PaymentState("canceled", str(_l("Canceled")), "muted")
    if status == "expired":
        return PaymentState("unfinished", str(_l("Not completed")), "muted")
    return PaymentState("waiting", str(_l("Waiting for payment")), "wait")


def autopay_rule(autopay, configuration=None):
    """Say an autopay's rule in one phrase ("every Monday 300 ₽")."""
    amount = format_human(autopay.amount or 0)
    if autopay.mode == "weekly":
        return str(WEEKLY_RULES[autopay.weekday or 0] % {"amount": amount})
    if autopay.mode == "monthly":
        return str(
            _l(
                "every month on day %(day)d, %(amount)s ₽",
                day=autopay.day_of_month or 1,
                amount=amount,
            )
        )
    p = module_params.effective(configuration.params) if configuration else {}
    if p.get("auto_threshold") and p.get("auto_target"):
        return str(
            _l(
                "if the balance is below %(low)s ₽, top it up to %(high)s ₽",
                low=format_human(to_kopecks(p["auto_threshold"])),
                high=format_human(to_kopecks(p["auto_target"])),
            )
        )
    return str(_l("the provider decides when and how much to charge"))


def refunded_of(transaction_ids):
    """Sum the done refunds of some transactions, kopecks by transaction id."""
    if not transaction_ids:
        return {}
    query = (
        Refund.select(Refund.transaction, fn.SUM(Refund.amount).alias("total"))
        .where(Refund.transaction.in_(list(transaction_ids)), Refund.status == "done")
        .group_by(Refund.transaction)
        .tuples()
    )
    # int(): PostgreSQL sums a bigint as numeric.
    return {transaction_id: int(total) for transaction_id, total in query}


def states_of(transactions):
    """Describe each of some payments in words, by transaction id."""
    refunded = refunded_of([t.id for t in transactions])
    return {t.id: payment_state(t, refunded.get(t.id, 0)) for t in transactions}


def suspension_reason(autopay):
    """Say in words why an autopay is paused, from its last declined charge."""
    charge = (
        autopay.charges.where(AutopayCharge.status == "failed")
        .order_by(AutopayCharge.id.desc())
        .first()
    )
    if charge is None:
        return str(DECLINE_REASONS["other"])
    return str(decline_reason(charge.result_code, "", charge.result_message))


def charge_reason(charge):
    """Say in words why one autopay charge was declined ("" if it was not)."""
    if charge.status not in ("retry", "failed") or not charge.result_code:
        return ""
    return str(decline_reason(charge.result_code, "", charge.result_message))
