"""The subscriber's cabinet: balance, card payment, return pages, history."""

from datetime import datetime, time, timedelta
from functools import wraps
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired

from . import payments, status_check
from .auth import current_contract
from .errors import AmountOutOfRange, PaymentUnavailable
from .models import STATUSES, Transaction
from .money import AmountError, format_human, parse_amount

bp = Blueprint("subscriber", __name__)

AMOUNT_ERRORS = {
    "empty": _l("Enter an amount."),
    "not_a_number": _l("Enter an amount in roubles, for example 500 or 500,50."),
    "too_many_decimals": _l("An amount has at most two digits after the comma."),
    "not_positive": _l("The amount must be greater than zero."),
}
UNAVAILABLE = {
    "not_linked": _l("Card payment is not available for your contract. "
                     "Please contact your provider."),
    "no_active_configuration": _l("Card payment is temporarily unavailable. "
                                  "Please try again later."),
    "configuration_incomplete": _l("Card payment is temporarily unavailable. "
                                   "Please try again later."),
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

    amount = StringField(_l("Amount, ₽"), validators=[DataRequired(_l("Enter an amount."))])


def _availability(contract):
    """Return (configuration, None) if the contract can pay by card, else (None, why)."""
    try:
        return payments.payment_gateway(contract)[1], None
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
        "subscriber/index.html", contract=contract, recent=recent,
        unavailable=unavailable,
    )


@bp.route("/pay", methods=["GET", "POST"])
@contract_required
def pay():
    """Ask for an amount; on POST create the order and send the browser to Uniteller."""
    contract = current_contract()
    configuration, unavailable = _availability(contract)
    form = PayForm()
    limits = payments.amount_limits(configuration) if configuration else None
    if unavailable:
        return render_template("subscriber/pay.html", form=form, unavailable=unavailable,
                               limits=None), 409 if request.method == "POST" else 200
    if form.validate_on_submit():
        try:
            amount = parse_amount(form.amount.data)
            transaction, pay_form = payments.start_payment(
                contract, amount,
                url_ok=_public_url("subscriber.payment_return", outcome="ok"),
                url_no=_public_url("subscriber.payment_return", outcome="no"),
                language=str(get_locale() or "ru"),
            )
        except AmountError as exc:
            form.amount.errors.append(AMOUNT_ERRORS[str(exc)])
        except AmountOutOfRange as exc:
            form.amount.errors.append(_l(
                "The amount must be from %(low)s to %(high)s ₽.",
                low=format_human(exc.details["low"]),
                high=format_human(exc.details["high"]),
            ))
        else:
            return render_template("subscriber/redirect.html",
                                   transaction=transaction, pay_form=pay_form)
    status = 400 if form.errors else 200
    return render_template("subscriber/pay.html", form=form, unavailable=None,
                           limits=limits), status


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
    return render_template("subscriber/return.html", transaction=transaction,
                           outcome=outcome)


@bp.route("/pay/status/<path:order_id>")
@contract_required
def payment_status(order_id):
    """Answer the payment status fragment; it polls itself until final."""
    transaction = payments.transaction_of(current_contract(), order_id)
    outcome = request.args.get("outcome") if request.args.get("outcome") in (
        "ok", "no") else None
    return render_template("subscriber/_payment-status.html", transaction=transaction,
                           outcome=outcome)


def _period(args, tz):
    """Read the period filter (dates in the ISP's timezone) as UTC bounds."""
    def parse(name):
        value = args.get(name, "").strip()
        if not value:
            return None
        try:
            return datetime.strptime(value, "%Y-%m-%d").date()
        except ValueError:
            abort(400, f"{name}: expected a date YYYY-MM-DD")

    def to_utc(day):
        local = datetime.combine(day, time.min, tzinfo=tz)
        return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)

    start, end = parse("from"), parse("to")
    return (
        to_utc(start) if start else None,
        to_utc(end + timedelta(days=1)) if end else None,
    )


@bp.route("/payments")
@contract_required
def history():
    """List the subscriber's payments, filtered by status and period, paginated."""
    status = request.args.get("status", "")
    if status and status not in HISTORY_FILTERS:
        abort(400, "unknown status")
    start, end = _period(request.args, ZoneInfo(current_app.config["TIMEZONE"]))
    page = request.args.get("page", "1")
    if not page.isdigit() or int(page) < 1:
        abort(400, "page must be a positive number")
    page = int(page)
    size = current_app.config["PAGE_SIZE"]
    # One row more than a page tells whether there is a next page.
    rows = list(
        Transaction.history(current_contract(), status or None, start, end)
        .limit(size + 1).offset((page - 1) * size)
    )
    context = {
        "rows": rows[:size], "has_next": len(rows) > size, "page": page,
        "filters": {k: request.args.get(k, "") for k in ("status", "from", "to")},
        "statuses": HISTORY_FILTERS,
    }
    fragment = request.headers.get("HX-Request") and not request.headers.get(
        "HX-History-Restore-Request"
    )
    template = "subscriber/_payment-table.html" if fragment else "subscriber/history.html"
    response = make_response(render_template(template, **context))
    response.vary.add("HX-Request")
    return response
