"""Autopay in the cabinet: set it up or change it, a new card, turn it off."""

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from .. import accounts, acquirer, autopay, fiscal
from ..auth import LoginThrottle, current_contract
from ..errors import AmountOutOfRange, TooManyRequests
from ..labels import AUTOPAY_MODE_LABELS
from ..models import Notice
from ..money import AmountError, format_human, parse_amount
from ..wording import (
    AMOUNT_ERRORS,
    CONTACT_REQUIRED,
    WEEKDAYS,
    out_of_range,
    too_many_open,
)
from .blueprint import availability, bp, contract_required
from .forms import AUTOPAY_ERRORS, AutopayForm, ConfirmForm, choices
from .paying import keep_contact, needs_contact, return_urls
from .words import autopay_rule, charge_reason, suspension_reason


def _autopay_page(contract, form, status=200):
    """Render the autopay page with its current state."""
    configuration, unavailable = availability(contract)
    modes = autopay.allowed_modes(configuration)
    form.mode.choices = choices((m, AUTOPAY_MODE_LABELS[m]) for m in modes)
    notices = list(contract.notices.order_by(Notice.id.desc()).limit(5))
    summary = autopay.summary(contract)
    current = summary["autopay"]
    return render_template(
        "subscriber/autopay.html",
        form=form,
        modes=modes,
        **summary,
        **_in_words(current, configuration),
        notices=notices,
        weekdays=WEEKDAYS,
        unavailable=unavailable,
        terms_version=autopay.TERMS_VERSION,
        ask_contact=needs_contact(contract, configuration),
        payment_types=acquirer.payment_types(configuration, autopay=True)
        if configuration
        else ("card",),
    ), status


def _in_words(current, configuration):
    """Return the rule and the suspension of an autopay as the page says them."""
    if current is None or current.state == "off":
        return {"rule": None, "suspended_words": None}
    return {
        "rule": autopay_rule(current, configuration),
        "suspended_words": suspension_reason(current),
        "charge_reason": charge_reason,
    }


def _filled_form(contract):
    """Return the autopay form showing the contract's current settings."""
    current = autopay.autopay_of(contract)
    form = AutopayForm(obj=current)
    if current and current.amount:
        form.amount.data = format_human(current.amount).replace("\u00a0", "")
    return form


def _password_refused(contract, password):
    """Check the password again, throttled like the login: None, or (error, status)."""
    # The login's own counters: a session does not buy more guesses.
    throttle = LoginThrottle("n", contract.number)
    if throttle.blocked():
        return throttle.lockout_message(), 429
    if not accounts.password_matches(contract, password):
        throttle.failed()
        return _l("Wrong password."), 400
    throttle.succeeded()
    return None


def _configure(contract, form):
    """Save a valid form's settings: (amount, needs a card); None, errors on it."""
    try:
        amount = parse_amount(form.amount.data)
        return amount, autopay.configure(
            contract,
            form.mode.data,
            amount,
            weekday=form.weekday.data,
            day_of_month=form.day_of_month.data,
            ip=request.remote_addr or "",
            user_agent=request.headers.get("User-Agent", ""),
        )
    except AmountError as exc:
        form.amount.errors.append(AMOUNT_ERRORS[str(exc)])
    except autopay.AutopayError as exc:
        if exc.message == "amount_out_of_range":
            form.amount.errors.append(out_of_range(exc))
        else:
            form.mode.errors.append(AUTOPAY_ERRORS[exc.message])
    return None


@bp.route("/autopay", methods=["GET", "POST"])
@contract_required
def autopay_settings():
    """Show autopay; on POST set it up or change it (a card payment if needed)."""
    contract = current_contract()
    if request.method == "GET":
        return _autopay_page(contract, _filled_form(contract))
    form = AutopayForm()
    configuration, unavailable = availability(contract)
    form.mode.choices = choices(
        (m, AUTOPAY_MODE_LABELS[m]) for m in autopay.allowed_modes(configuration)
    )
    if unavailable or not form.validate_on_submit():
        return _autopay_page(contract, form, 409 if unavailable else 400)
    refused = _password_refused(contract, form.password.data)
    if refused:
        form.password.errors.append(refused[0])
        return _autopay_page(contract, form, refused[1])
    if needs_contact(contract, configuration):
        contract = keep_contact(contract, form.contact)
        if contract is None:
            return _autopay_page(current_contract(), form, 400)
    saved = _configure(contract, form)
    if saved is None:
        return _autopay_page(contract, form, 400)
    amount, needs_card = saved
    if not needs_card:
        flash(_l("Autopay settings saved."), "info")
        return redirect(url_for("subscriber.autopay_settings"))
    offered = acquirer.payment_types(configuration, autopay=True)
    method = form.method.data if form.method.data in offered else "card"
    return _bind_card(contract, amount, method)


def _bind_card(contract, amount, payment_type="card"):
    """Answer the auto-submitting form of the payment that binds the card (or SBP)."""
    try:
        transaction, pay_form = autopay.start_binding(
            contract,
            amount,
            language=str(get_locale() or "ru"),
            max_open=current_app.config["OPEN_ORDERS_MAX"],
            payment_type=payment_type,
            **return_urls(),
        )
    except AmountOutOfRange as exc:
        flash(out_of_range(exc), "error")
        return redirect(url_for("subscriber.autopay_settings"))
    except TooManyRequests as exc:
        flash(too_many_open(exc), "error")
        return redirect(url_for("subscriber.autopay_settings"))
    except fiscal.ContactRequired:
        flash(CONTACT_REQUIRED, "error")
        return redirect(url_for("subscriber.autopay_settings"))
    return render_template(
        "subscriber/redirect.html", transaction=transaction, pay_form=pay_form
    )


@bp.route("/autopay/card", methods=["POST"])
@contract_required
def autopay_change_card():
    """Pay once with a new card; when it succeeds it becomes the autopay's card."""
    contract = current_contract()
    current = autopay.autopay_of(contract)
    if current is None or current.state == "off":
        abort(409, _l("Set up autopay first."))
    form = ConfirmForm()
    refused = (
        _password_refused(contract, form.password.data)
        if form.validate_on_submit()
        else (_l("Wrong password."), 400)
    )
    if refused:
        flash(refused[0], "error")
        if refused[1] == 429:
            return _autopay_page(contract, _filled_form(contract), 429)
        return redirect(url_for("subscriber.autopay_settings"))
    try:
        amount = parse_amount(form.amount.data)
    except AmountError as exc:
        flash(AMOUNT_ERRORS[str(exc)], "error")
        return redirect(url_for("subscriber.autopay_settings"))
    return _bind_card(contract, amount)


@bp.route("/autopay/off", methods=["POST"])
@contract_required
def autopay_off():
    """Turn autopay off at once."""
    contract = current_contract()
    if autopay.autopay_of(contract) is None:
        abort(404, _l("Autopay is not set up."))
    autopay.turn_off(contract)
    flash(_l("Autopay is off. No further charges will be made."), "info")
    return redirect(url_for("subscriber.autopay_settings"))
