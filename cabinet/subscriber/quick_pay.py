"""Paying without signing in (/quick-pay): a contract number, an amount, Uniteller."""

from flask import abort, current_app, render_template, request, session
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from .. import acquirer, fiscal, payments, quick_pay, status_check
from ..auth import client_address
from ..errors import AmountOutOfRange, TooManyRequests
from ..models import Transaction
from ..money import AmountError, parse_amount
from ..wording import AMOUNT_ERRORS, CONTACT_REQUIRED, out_of_range, too_many_open
from .blueprint import availability, bp, public_url
from .forms import QuickPayForm
from .paying import keep_contact, needs_contact

# One answer for every number that cannot be paid: it tells nothing about it.
REFUSED = _l("Check the contract number; if it is right, contact your provider.")
ORDERS_KEPT = 5  # the orders this browser started whose status it may see


def _return_urls():
    """Where Uniteller sends the browser back: pages that need no sign-in."""
    return {
        "url_ok": lambda order_id: public_url(
            "subscriber.quick_pay_return", outcome="ok", order=order_id
        ),
        "url_no": lambda order_id: public_url(
            "subscriber.quick_pay_return", outcome="no", order=order_id
        ),
    }


def _page(form, status=200, wait=None, payee=None):
    """Render the quick-pay form (receipts: the contact field too)."""
    configuration = quick_pay.configuration_for_form()
    limits = acquirer.amount_limits(configuration) if configuration else None
    ask_contact = bool(form.contact.errors) or (
        configuration is not None and fiscal.profile_of(configuration) is not None
    )
    headers = {"Retry-After": str(wait)} if wait else {}
    return (
        render_template(
            "subscriber/quick-pay.html",
            form=form,
            limits=limits,
            ask_contact=ask_contact,
            wait=wait,
            payee=payee,
        ),
        status,
        headers,
    )


def _over_limit(number):
    """Count this attempt per address and per number; the seconds to wait, or 0."""
    address = client_address(request.remote_addr)
    waits = [
        limit.retry_after()
        for limit in quick_pay.limits(address, number)
        if not limit.hit()
    ]
    return max(waits, default=0)


def _payable(form, amount):
    """Return the contract a valid form pays, or None (the one refusal on the form)."""
    try:
        return quick_pay.contract_to_pay(form.number.data, amount)
    except quick_pay.QuickPayRefused:
        form.number.errors.append(REFUSED)
        return None


def _start(contract, form, amount):
    """Create the order of a payable form: (order, pay form), or (None, status)."""
    if needs_contact(contract, availability(contract)[0]):
        contract = keep_contact(contract, form.contact)
        if contract is None:
            return None, 400
    try:
        return payments.start_payment(
            contract,
            amount,
            language=str(get_locale() or "ru"),
            source="quick-pay",
            max_open=current_app.config["OPEN_ORDERS_MAX"],
            **_return_urls(),
        ), None
    except AmountOutOfRange as exc:
        form.amount.errors.append(out_of_range(exc))
        return None, 400
    except TooManyRequests as exc:
        form.amount.errors.append(too_many_open(exc))
        return None, 429
    except fiscal.ContactRequired:
        form.contact.errors.append(CONTACT_REQUIRED)
        return None, 409


@bp.route("/quick-pay", methods=["GET", "POST"])
def quick_pay_form():
    """Ask for a contract number and an amount; on POST go straight to Uniteller."""
    if request.method == "GET":
        form = QuickPayForm(
            formdata=None,
            number=request.args.get("account", "")[:64],
            amount=request.args.get("amount", "")[:20],
        )
        return _page(form)
    form = QuickPayForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        amount = parse_amount(form.amount.data)
    except AmountError as exc:
        form.amount.errors.append(AMOUNT_ERRORS[str(exc)])
        return _page(form, 400)
    number = form.number.data.strip()
    wait = _over_limit(number)
    if wait:
        return _page(form, 429, wait)
    contract = _payable(form, amount)
    if contract is None:
        return _page(form, 400)
    if current_app.config["QUICK_PAY_SHOW_NAME"] and form.confirmed.data != number:
        form.confirmed.data = number  # whom it pays, seen before paying
        return _page(form, payee=quick_pay.masked_name(contract.name))
    started, status = _start(contract, form, amount)
    if started is None:
        return _page(form, status)
    transaction, pay_form = started
    session["quick_pay"] = [*session.get("quick_pay", []), transaction.order_id][
        -ORDERS_KEPT:
    ]
    return render_template(
        "subscriber/redirect.html", transaction=transaction, pay_form=pay_form
    )


def _own_order(order_id):
    """Return an order this browser started on /quick-pay, or 404."""
    if order_id not in session.get("quick_pay", []):
        abort(404)
    transaction = Transaction.get_or_none(Transaction.order_id == order_id)
    if transaction is None:
        abort(404)
    return transaction


@bp.route("/quick-pay/return/<any(ok, no):outcome>/<path:order>")
def quick_pay_return(outcome, order):
    """Show where a quick payment stands after Uniteller sent the browser back."""
    transaction = _own_order(request.args.get("Order_ID") or order)
    status_check.request_order_check(transaction, "return")
    return render_template(
        "subscriber/return.html", transaction=transaction, outcome=outcome, quick=True
    )


@bp.route("/quick-pay/status/<path:order_id>")
def quick_pay_status(order_id):
    """Answer a quick payment's status fragment; it polls itself until final."""
    outcome = request.args.get("outcome")
    return render_template(
        "subscriber/_payment-status.html",
        transaction=_own_order(order_id),
        outcome=outcome if outcome in ("ok", "no") else None,
        quick=True,
    )
