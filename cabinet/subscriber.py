"""The subscriber's cabinet: balance, card payment, return pages, history."""

from functools import wraps

from flask import (
    Blueprint,
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
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, NumberRange, Optional

from . import acquirer, autopay, payments, status_check
from .auth import current_contract
from .errors import AmountOutOfRange, PaymentUnavailable
from .models import (
    AUTOPAY_MODE_LABELS,
    STATUSES,
    Notice,
    Transaction,
)
from .money import AmountError, format_human, parse_amount
from .pages import page_or_fragment, parse_period
from .prepared import Prepared
from .wording import AMOUNT_ERRORS, WEEKDAYS, out_of_range

bp = Blueprint("subscriber", __name__)

UNAVAILABLE = {
    "not_linked": _l(
        "Card payment is not available for your contract. Please contact your provider."
    ),
    "no_active_configuration": _l(
        "Card payment is temporarily unavailable. Please try again later."
    ),
    "configuration_incomplete": _l(
        "Card payment is temporarily unavailable. Please try again later."
    ),
}
HISTORY_FILTERS = ("success", *STATUSES)


def contract_required(view):
    """Let only a logged-in subscriber in; staff get 403."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not getattr(current_user, "is_contract", False):
            abort(403, "subscribers only")
        return view(*args, **kwargs)

    return wrapped


class PayForm(FlaskForm):
    """The amount to pay."""

    amount = StringField(
        _l("Amount, ₽"), validators=[DataRequired(_l("Enter an amount."))]
    )


def _availability(contract):
    """Return (configuration, None) if card payment is open, else (None, why)."""
    try:
        return acquirer.payment_gateway(contract)[1], None
    except PaymentUnavailable as exc:
        return None, UNAVAILABLE[exc.message]


@bp.route("/")
@contract_required
def index():
    """Show the balance, the last payments and the pay button."""
    contract = current_contract()
    configuration, unavailable = _availability(contract)
    recent = list(Transaction.history(contract).limit(5))
    return render_template(
        "subscriber/index.html",
        contract=contract,
        recent=recent,
        unavailable=unavailable,
    )


@bp.route("/pay", methods=["GET", "POST"])
@contract_required
def pay():
    """Ask for an amount; on POST create the order and send the browser to Uniteller."""
    contract = current_contract()
    configuration, unavailable = _availability(contract)
    form = PayForm()
    limits = acquirer.amount_limits(configuration) if configuration else None
    if unavailable:
        return render_template(
            "subscriber/pay.html", form=form, unavailable=unavailable, limits=None
        ), 409 if request.method == "POST" else 200
    if form.validate_on_submit():
        try:
            amount = parse_amount(form.amount.data)
            transaction, pay_form = payments.start_payment(
                contract,
                amount,
                url_ok=_public_url("subscriber.payment_return", outcome="ok"),
                url_no=_public_url("subscriber.payment_return", outcome="no"),
                language=str(get_locale() or "ru"),
            )
        except AmountError as exc:
            form.amount.errors.append(AMOUNT_ERRORS[str(exc)])
        except AmountOutOfRange as exc:
            form.amount.errors.append(out_of_range(exc))
        else:
            return render_template(
                "subscriber/redirect.html", transaction=transaction, pay_form=pay_form
            )
    status = 400 if form.errors else 200
    return render_template(
        "subscriber/pay.html", form=form, unavailable=None, limits=limits
    ), status


def _public_url(endpoint, **values):
    """Build an absolute URL on PUBLIC_URL (what we tell Uniteller)."""
    return current_app.config["PUBLIC_URL"] + url_for(endpoint, **values)


@bp.route("/pay/return/<any(ok, no):outcome>")
@contract_required
def payment_return(outcome):
    """Show where a payment stands after Uniteller sent the subscriber back."""
    order_id = request.args.get("Order_ID", "")
    if not order_id:
        abort(400, "Order_ID is missing")
    transaction = payments.transaction_of(current_contract(), order_id)
    # The page turns final even if the callback is late or lost.
    status_check.request_order_check(transaction, "return")
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


# The columns a history row shows: a page reads no more than it prints.
HISTORY_COLUMNS = (
    Transaction.id,
    Transaction.created_at,
    Transaction.order_id,
    Transaction.amount,
    Transaction.status,
)
_HISTORY_QUERIES = {}


def _history_query(status, since, until):
    """Return the prepared history query for a combination of filters."""
    key = (status, since, until)
    if key not in _HISTORY_QUERIES:
        _HISTORY_QUERIES[key] = Prepared(
            lambda slot: (
                Transaction.history(
                    slot("contract"),
                    status,
                    slot("start", Transaction.created_at) if since else None,
                    slot("end", Transaction.created_at) if until else None,
                )
                .select(*HISTORY_COLUMNS)
                .limit(slot("limit"))
                .offset(slot("offset"))
            )
        )
    return _HISTORY_QUERIES[key]


@bp.route("/payments")
@contract_required
def history():
    """List the subscriber's payments, filtered by status and period, paginated."""
    status = request.args.get("status", "")
    if status and status not in HISTORY_FILTERS:
        abort(400, "unknown status")
    start, end = parse_period(request.args)
    page = request.args.get("page", "1")
    if not page.isdigit() or int(page) < 1:
        abort(400, "page must be a positive number")
    page = int(page)
    size = current_app.config["PAGE_SIZE"]
    # One row more than a page tells whether there is a next page.
    rows = _history_query(status or None, start is not None, end is not None).all(
        contract=current_contract().id,
        start=start,
        end=end,
        limit=size + 1,
        offset=(page - 1) * size,
    )
    context = {
        "rows": rows[:size],
        "has_next": len(rows) > size,
        "page": page,
        "filters": {k: request.args.get(k, "") for k in ("status", "from", "to")},
        "statuses": HISTORY_FILTERS,
    }
    return page_or_fragment(
        "subscriber/history.html", "subscriber/_payment-table.html", **context
    )


AUTOPAY_ERRORS = {
    "mode_not_allowed": _l("This mode is not available."),
    "bad_weekday": _l("Choose a day of the week."),
    "bad_day": _l("Choose a day of the month from 1 to 31."),
}


def _choices(pairs):
    """Build WTForms choices from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


class AutopayForm(FlaskForm):
    """Autopay's mode and parameters, the password again, and consent."""

    mode = RadioField(
        _l("Mode"),
        choices=_choices(AUTOPAY_MODE_LABELS.items()),
        validators=[DataRequired(_l("Choose a mode."))],
    )
    weekday = SelectField(
        _l("Day of the week"),
        coerce=int,
        choices=_choices(enumerate(WEEKDAYS)),
        default=0,
    )
    day_of_month = IntegerField(
        _l("Day of the month"), default=1, validators=[Optional(), NumberRange(1, 31)]
    )
    amount = StringField(
        _l("Amount, ₽"), validators=[DataRequired(_l("Enter an amount."))]
    )
    password = PasswordField(
        _l("Your password, to confirm"),
        validators=[DataRequired(_l("Enter your password."))],
    )
    consent = BooleanField(
        validators=[
            DataRequired(_l("Autopay needs your consent to recurring charges."))
        ]
    )


def _autopay_page(contract, form, status=200):
    """Render the autopay page with its current state."""
    configuration, unavailable = _availability(contract)
    modes = autopay.allowed_modes(configuration)
    form.mode.choices = _choices((m, AUTOPAY_MODE_LABELS[m]) for m in modes)
    notices = list(contract.notices.order_by(Notice.id.desc()).limit(5))
    return render_template(
        "subscriber/autopay.html",
        form=form,
        modes=modes,
        **autopay.summary(contract),
        notices=notices,
        weekdays=WEEKDAYS,
        unavailable=unavailable,
        terms_version=autopay.TERMS_VERSION,
    ), status


@bp.route("/autopay", methods=["GET", "POST"])
@contract_required
def autopay_settings():
    """Show autopay; on POST set it up or change it (a card payment if needed)."""
    contract = current_contract()
    current = autopay.autopay_of(contract)
    form = AutopayForm(obj=current if request.method == "GET" and current else None)
    if current and request.method == "GET" and current.amount:
        form.amount.data = format_human(current.amount).replace("\u00a0", "")
    if request.method == "GET":
        return _autopay_page(contract, form)
    configuration, unavailable = _availability(contract)
    form.mode.choices = _choices(
        (m, AUTOPAY_MODE_LABELS[m]) for m in autopay.allowed_modes(configuration)
    )
    if unavailable or not form.validate_on_submit():
        return _autopay_page(contract, form, 400 if not unavailable else 409)
    if not check_password_hash(contract.password_hash, form.password.data):
        form.password.errors.append(_l("Wrong password."))
        return _autopay_page(contract, form, 400)
    try:
        amount = parse_amount(form.amount.data)
        needs_card = autopay.configure(
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
        return _autopay_page(contract, form, 400)
    except autopay.AutopayError as exc:
        if exc.message == "amount_out_of_range":
            form.amount.errors.append(out_of_range(exc))
        else:
            form.mode.errors.append(AUTOPAY_ERRORS[exc.message])
        return _autopay_page(contract, form, 400)
    if not needs_card:
        flash(_l("Autopay settings saved."), "info")
        return redirect(url_for("subscriber.autopay_settings"))
    return _bind_card(contract, amount)


def _bind_card(contract, amount):
    """Answer the auto-submitting form of the payment that binds the card."""
    try:
        transaction, pay_form = autopay.start_binding(
            contract,
            amount,
            url_ok=_public_url("subscriber.payment_return", outcome="ok"),
            url_no=_public_url("subscriber.payment_return", outcome="no"),
            language=str(get_locale() or "ru"),
        )
    except AmountOutOfRange as exc:
        flash(out_of_range(exc), "error")
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
        abort(409, "set up autopay first")
    form = ConfirmForm()
    if not form.validate_on_submit() or not check_password_hash(
        contract.password_hash, form.password.data
    ):
        flash(_l("Wrong password."), "error")
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
        abort(404, "no autopay")
    autopay.turn_off(contract)
    flash(_l("Autopay is off. No further charges will be made."), "info")
    return redirect(url_for("subscriber.autopay_settings"))


class ConfirmForm(FlaskForm):
    """The password again, and the amount of the payment with the new card."""

    password = PasswordField(validators=[DataRequired()])
    amount = StringField(validators=[DataRequired()])
