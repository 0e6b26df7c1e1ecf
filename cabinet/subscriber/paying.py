"""Paying by card: the amount, the way to Uniteller, the way back, the status."""

from flask import abort, current_app, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _

from .. import accounts, acquirer, fiscal, payments, status_check
from ..auth import current_contract
from ..errors import AmountOutOfRange, CabinetError, TooManyRequests
from ..extensions import get_redis
from ..money import AmountError, parse_amount
from ..pacing import WindowLimit
from ..wording import (
    AMOUNT_ERRORS,
    BAD_CONTACT,
    CONTACT_REQUIRED,
    TOO_MANY_PAY_ATTEMPTS,
    out_of_range,
    too_many_open,
)
from .blueprint import availability, bp, contract_required, public_url
from .forms import PayForm


def return_urls():
    """Return the ok and no URLs Uniteller sends the subscriber back to.

    Uniteller promises Order_ID only on the way back from a success (v1.43), so
    the failure URL names the order in its path.
    """
    return {
        "url_ok": public_url("subscriber.payment_return", outcome="ok"),
        "url_no": lambda order_id: public_url(
            "subscriber.payment_return", outcome="no", order=order_id
        ),
    }


def needs_contact(contract, configuration):
    """Tell whether a receipt of this contract would have nowhere to go (54-FZ)."""
    return (
        configuration is not None
        and fiscal.profile_of(configuration) is not None
        and not (contract.email or contract.phone)
    )


def keep_contact(contract, field):
    """Keep the e-mail or phone typed in `field`; the contract, or None (error set)."""
    text = (field.data or "").strip()
    if not text:
        field.errors.append(CONTACT_REQUIRED)
        return None
    try:
        if "@" in text:
            return accounts.set_contact(contract, email=text)
        return accounts.set_contact(contract, phone=text)
    except CabinetError:
        field.errors.append(BAD_CONTACT)
        return None


def chosen_type(form, configuration):
    """Return the payment type the form chose among those offered ("card" if none)."""
    chosen = form.method.data
    return chosen if chosen in acquirer.payment_types(configuration) else "card"


def _start(contract, form, configuration):
    """Create the order of a valid pay form: ((order, pay form), None), or
    (None, HTTP status) with the reason on the form."""
    attempts = WindowLimit(
        get_redis(), f"cabinet:pay:{contract.id}", current_app.config["PAY_RATE_LIMIT"]
    )
    if not attempts.hit():
        form.amount.errors.append(TOO_MANY_PAY_ATTEMPTS)
        return None, 429
    try:
        started = payments.start_payment(
            contract,
            parse_amount(form.amount.data),
            language=str(get_locale() or "ru"),
            max_open=current_app.config["OPEN_ORDERS_MAX"],
            payment_type=chosen_type(form, configuration),
            **return_urls(),
        )
        return started, None
    except AmountError as exc:
        form.amount.errors.append(AMOUNT_ERRORS[str(exc)])
    except AmountOutOfRange as exc:
        form.amount.errors.append(out_of_range(exc))
    except TooManyRequests as exc:
        form.amount.errors.append(too_many_open(exc))
        return None, 429
    except fiscal.ContactRequired:
        form.contact.errors.append(CONTACT_REQUIRED)
        return None, 409
    return None, 400


@bp.route("/pay", methods=["GET", "POST"])
@contract_required
def pay():
    """Ask for an amount; on POST create the order and send the browser to Uniteller."""
    contract = current_contract()
    configuration, unavailable = availability(contract)
    # /pay?amount=500 (a handoff's next, the ISP's link) fills the amount in.
    form = PayForm(amount=request.args.get("amount", "")[:20] or None)
    if unavailable:
        return render_template(
            "subscriber/pay.html", form=form, unavailable=unavailable, limits=None
        ), 409 if request.method == "POST" else 200
    started, status = None, 400
    ask_contact = needs_contact(contract, configuration)
    if form.validate_on_submit():
        if ask_contact:
            contract = keep_contact(contract, form.contact)
        if contract is not None:
            started, status = _start(contract, form, configuration)
    if started:
        transaction, pay_form = started
        return render_template(
            "subscriber/redirect.html", transaction=transaction, pay_form=pay_form
        )
    limits = acquirer.amount_limits(configuration)
    return render_template(
        "subscriber/pay.html",
        form=form,
        unavailable=None,
        limits=limits,
        ask_contact=ask_contact,
        payment_types=acquirer.payment_types(configuration),
    ), (status if form.errors else 200)


@bp.route("/pay/return/<any(ok, no):outcome>")
@bp.route("/pay/return/<any(ok, no):outcome>/<path:order>")
@contract_required
def payment_return(outcome, order=None):
    """Show where a payment stands after Uniteller sent the subscriber back."""
    order_id = request.args.get("Order_ID") or order
    if not order_id:
        abort(400, _("The bank sent no order number."))
    transaction = payments.transaction_of(current_contract(), order_id)
    # The page turns final even if the callback is late or lost. Back from a
    # failure, Uniteller already knows the outcome and may send no callback:
    # ask at once, so a decline shows in a second or two, not after the delay.
    delay = current_app.config["RETURN_CHECK_DELAY"]
    status_check.request_order_check(
        transaction, "return", delay=min(1, delay) if outcome == "no" else delay
    )
    return render_template(
        "subscriber/return.html", transaction=transaction, outcome=outcome
    )


@bp.route("/pay/status/<path:order_id>")
@contract_required
def payment_status(order_id):
    """Answer the payment status fragment; it polls itself until final."""
    transaction = payments.transaction_of(current_contract(), order_id)
    outcome = (
        request.args.get("outcome")
        if request.args.get("outcome") in ("ok", "no")
        else None
    )
    return render_template(
        "subscriber/_payment-status.html", transaction=transaction, outcome=outcome
    )
