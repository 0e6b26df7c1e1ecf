"""Uniteller's calls to us: payment callbacks (signed, CSRF-exempt)."""

import logging

from flask import Blueprint, current_app, request
from peewee import InterfaceError, OperationalError
from playhouse.pool import MaxConnectionsExceeded

from . import fiscal, payments, status_check
from .db import retrying
from .extensions import get_redis
from .models import ModuleInstance, Transaction
from .pacing import WindowLimit

bp = Blueprint("gateway", __name__, url_prefix="/uniteller")
log = logging.getLogger(__name__)
# When Uniteller may send a callback again that found the database unavailable.
RETRY_AFTER_SECONDS = 60


def _callback_fields():
    """Collect a callback's fields as (name, value) pairs: query string, then body.

    Every pair, repeats included: the payments core refuses a name given twice
    unless both are the same (Uniteller repeats its fields in the query string).
    """
    pairs = list(request.args.items(multi=True))
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            pairs += [(str(k), v) for k, v in body.items()]
    else:
        pairs += list(request.form.items(multi=True))
    return pairs


@bp.route("/<code>/notify", methods=["POST"])
def notify(code):
    """Receive a payment callback: verify, apply once, answer 200 quickly."""
    pairs = _callback_fields()
    # A shop with one notification URL for both gets its receipts here too.
    receive = (
        fiscal.receive_fiscal_callback
        if fiscal.is_fiscal_callback(pairs)
        else payments.receive_callback
    )
    # A lock outlasting the busy timeout is waited out here, not answered 500.
    outcome = retrying(receive, code, pairs)
    return outcome.result, 200, {"Content-Type": "text/plain"}


@bp.route("/<code>/fiscal", methods=["POST"])
def fiscal_notify(code):
    """Receive a fiscal notification (fiscal 02.1.18 §3.15): status and receipts."""
    outcome = retrying(fiscal.receive_fiscal_callback, code, _callback_fields())
    return outcome.result, 200, {"Content-Type": "text/plain"}


@bp.errorhandler(OperationalError)
@bp.errorhandler(InterfaceError)
@bp.errorhandler(MaxConnectionsExceeded)
def database_unavailable(exc):
    """Answer 503 when the database cannot take a call now: Uniteller sends it again.

    Locked past every wait, refusing connections, or down: nothing was written,
    and a warning says so, not an error of ours with a traceback.
    """
    said = str(exc).strip().splitlines()
    log.warning(
        "%s deferred (503): database unavailable: %s",
        request.path,
        said[0][:200] if said else type(exc).__name__,
    )
    return (
        "database busy, send again later",
        503,
        {"Content-Type": "text/plain", "Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@bp.route("/<code>/status", methods=["GET", "POST"])
def status_request(code):
    """Answer Uniteller's status request with PAID, NEW or CANCELLED, nothing more."""
    # Anyone can call this: bound what one address may ask (Uniteller retries a
    # non-200 answer later, so a real status request is delayed, never lost).
    limit = WindowLimit(
        get_redis(),
        f"cabinet:status-request:{request.remote_addr}",
        current_app.config["STATUS_REQUEST_LIMIT"],
    )
    if not limit.hit():
        return (
            "too many status requests from this address, try again later",
            429,
            {"Content-Type": "text/plain", "Retry-After": str(limit.retry_after())},
        )
    order_id = request.values.get("order_id", "")
    upoint_id = request.values.get("upoint_id", "")
    instance = ModuleInstance.by_code(code)
    transaction = Transaction.by_order_id(order_id) if order_id else None
    answer = "NEW"  # unknown or unsure: Uniteller then resends the callback
    if (
        instance is not None
        and transaction is not None
        and transaction.instance_id == instance.id
        # Shop_IDP is case-insensitive at Uniteller.
        and str(transaction.configuration.params.get("shop_id", "")).lower()
        == upoint_id.lower()
    ):
        if transaction.is_credited:
            answer = "PAID"
        elif transaction.status == "canceled":
            answer = "CANCELLED"
        else:
            # Our record is behind Uniteller's: ask it now rather than wait.
            status_check.request_order_check(transaction, "status-request")
    return answer, 200, {"Content-Type": "text/plain"}
