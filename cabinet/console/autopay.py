"""A contract's autopay, from the console: a manual charge, turning it off."""

from flask import abort, flash, redirect, url_for
from flask_babel import gettext as _

from .. import accounts, audit, autopay
from ..db import write_unit
from ..errors import CabinetError
from ..money import AmountError, format_human, format_wire, parse_amount
from ..wording import AMOUNT_ERRORS, out_of_range
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import AutopayChargeForm, fresh_form_required


def _back_to_block(number):
    """Send the operator back to the contract's autopay block."""
    return redirect(url_for("console.contract", number=number) + "#autopay-block")


def _refusal(exc):
    """Say in words why an autopay action was refused."""
    if exc.message == "not_automatic":
        return _("The contract's autopay is not on in automatic mode.")
    if exc.message == "amount_out_of_range":
        return out_of_range(exc)
    return exc.message


def _charge(contract, form):
    """Ask for a charge of the form's amount (audited); return the amount.

    Raises AmountError or CabinetError when the form or autopay refuses it."""
    if not form.validate_on_submit():
        raise CabinetError(_("Give the amount and the reason."))
    amount = parse_amount(form.amount.data)
    operator = current_operator()
    with write_unit():
        charge = autopay.request_charge(
            contract,
            amount,
            form.reason.data.strip(),
            source=f"console:{operator.login}",
        )
        audit.record(
            operator,
            "autopay.charge",
            "contract",
            contract.number,
            None,
            {
                "charge": charge.id,
                "amount": format_wire(amount),
                "reason": charge.reason,
            },
        )
    return amount


@bp.route("/contracts/<number>/autopay/charge", methods=["POST"])
@operator_required()
def autopay_charge(number):
    """Charge a contract's card now, in automatic mode (audited)."""
    found = accounts.get_contract(number)
    try:
        amount = _charge(found, AutopayChargeForm())
    except AmountError as exc:
        flash(AMOUNT_ERRORS[str(exc)], "error")
    except CabinetError as exc:
        flash(_refusal(exc), "error")
    else:
        message = _(
            "Charge of %(amount)s ₽ asked for; its result appears below.",
            amount=format_human(amount),
        )
        flash(message, "ok")
    return _back_to_block(number)


@bp.route("/contracts/<number>/autopay/off", methods=["POST"])
@operator_required()
@fresh_form_required
def autopay_off(number):
    """Turn a contract's autopay off (audited)."""
    found = accounts.get_contract(number)
    current = autopay.autopay_of(found)
    if current is None:
        abort(404, "no autopay")
    with write_unit():
        autopay.turn_off(found, who=f"operator {current_operator().login}")
        audit.record(
            current_operator(),
            "autopay.off",
            "contract",
            number,
            {"state": current.state},
            {"state": "off"},
        )
    flash(_("Autopay is off."), "ok")
    return _back_to_block(number)
