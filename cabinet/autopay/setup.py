"""Turn autopay on and off: modes, consent, the binding card payment, the summary."""

from .. import acquirer, payments
from .. import params as module_params
from ..clock import local_today, utcnow
from ..db import write_unit
from ..errors import CabinetError, NotFound
from ..models import Autopay, AutopayCharge, AutopayConsent
from . import notices, states
from .calendar import next_charge_date

TERMS_VERSION = "2026-11"
MODES = ("weekly", "monthly", "automatic")


class AutopayError(CabinetError):
    """An autopay request that cannot be carried out as asked."""

    status_code = 409


def allowed_modes(configuration):
    """Return the modes a configuration lets subscribers choose."""
    if configuration is None:
        return []
    p = module_params.effective(configuration.params)
    return [mode for mode in MODES if p[f"autopay_{mode}"] == "yes"]


def autopay_of(contract):
    """Return a contract's autopay, or None."""
    return Autopay.get_or_none(Autopay.contract == contract)


def summary(contract, charges=5):
    """Return what people see of a contract's autopay: it, its next and last charges."""
    current = autopay_of(contract)
    if current is None:
        return {"autopay": None, "next_day": None, "charges": []}
    return {
        "autopay": current,
        "next_day": next_charge_date(current, local_today()),
        "charges": list(
            current.charges.order_by(AutopayCharge.id.desc()).limit(charges)
        ),
    }


def configure(
    contract, mode, amount, weekday=None, day_of_month=None, ip="", user_agent=""
):
    """Set autopay's mode and parameters, recording consent; True if a card is needed.

    An active autopay with a card keeps it: changing the weekday, day or amount
    needs no new card payment.
    """
    _, configuration = acquirer.payment_gateway(contract)
    if mode not in allowed_modes(configuration):
        raise AutopayError("mode_not_allowed")
    low, high = acquirer.amount_limits(configuration)
    if mode in ("weekly", "monthly") and not low <= (amount or 0) <= high:
        raise AutopayError("amount_out_of_range", low=low, high=high)
    if mode == "weekly" and weekday not in range(7):
        raise AutopayError("bad_weekday")
    if mode == "monthly" and day_of_month not in range(1, 32):
        raise AutopayError("bad_day")
    values = {
        "mode": mode,
        "weekday": weekday if mode == "weekly" else None,
        "day_of_month": day_of_month if mode == "monthly" else None,
        "amount": amount if mode in ("weekly", "monthly") else None,
        "updated_at": utcnow(),
    }
    with write_unit():
        autopay = autopay_of(contract)
        if autopay is None:
            autopay = Autopay.create(contract=contract, state="binding", **values)
        else:
            Autopay.update(values).where(Autopay.id == autopay.id).execute()
            autopay = Autopay.get_by_id(autopay.id)
        AutopayConsent.create(
            autopay=autopay,
            terms_version=TERMS_VERSION,
            mode=mode,
            amount=values["amount"],
            ip=(ip or "")[:64],
            user_agent=(user_agent or "")[:300],
        )
        # Only an active autopay keeps its card; any other needs a card payment.
        needs_card = autopay.state != "active" or autopay.parent_id is None
        if needs_card:
            Autopay.update(state="binding").where(Autopay.id == autopay.id).execute()
    return needs_card


def start_binding(
    contract,
    amount,
    url_ok,
    url_no,
    language="ru",
    max_open=None,
    payment_type="card",
):
    """Start the payment (card or SBP) whose order becomes the parent of charges."""
    autopay = autopay_of(contract)
    if autopay is None:
        raise NotFound("no_autopay")
    transaction, form = payments.start_payment(
        contract,
        amount,
        url_ok,
        url_no,
        language,
        source="autopay",
        kind="bind",
        max_open=max_open,
        payment_type=payment_type,
    )
    Autopay.update(binding=transaction, updated_at=utcnow()).where(
        Autopay.id == autopay.id
    ).execute()
    return transaction, form


def bind_succeeded(transaction):
    """Make a successful binding payment the parent and autopay active (in a unit)."""
    autopay = Autopay.get_or_none(Autopay.binding == transaction)
    if autopay is None or autopay.state == "off":
        return
    Autopay.update(
        parent=transaction,
        binding=None,
        state="active",
        suspended_reason=None,
        active_since=autopay.active_since or utcnow(),
        updated_at=utcnow(),
    ).where(Autopay.id == autopay.id).execute()
    notices.autopay_active(autopay.contract, transaction.order_id)


def turn_off(contract, who="subscriber"):
    """Stop future charges at once; charges not yet sent are canceled."""
    with write_unit():
        autopay = autopay_of(contract)
        if autopay is None:
            raise NotFound("no_autopay")
        Autopay.update(state="off", binding=None, updated_at=utcnow()).where(
            Autopay.id == autopay.id
        ).execute()
        states.move(
            states.CANCELED,
            AutopayCharge.autopay == autopay,
            among=states.WAITING,
            result_message=f"turned off by {who}",
        )
        if autopay.state != "off":
            notices.autopay_off(contract)
