"""Serve the operator's view and the /_sandbox/ control API."""

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from . import cashbox
from .wire import format_amount, format_time

bp = Blueprint("control", __name__)
SHOP_KEYS = {
    "shop_id",
    "password",
    "login",
    "notify_url",
    "status_url",
    "callback_fields",
    "recurrent_allowed",
    "partial_refund_allowed",
    "notify_balance",
    "fiscal",
    "fiscal_notify_url",
    "fiscal_protection",
}
CARD_STATES = {"expire-card": "expired", "block-card": "blocked"}


def _sandbox():
    return current_app.extensions["sandbox"]


def _json_object() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(_bad_request("the body must be a JSON object"))
    return data


def _bad_request(reason: str):
    response = jsonify(error=reason)
    response.status_code = 400
    return response


def _order_details(order: dict) -> dict:
    """Return an order attempt with its callbacks and status requests."""
    sandbox = _sandbox()
    return {
        **order,
        "callbacks": sandbox.callbacks_of(order["id"]),
        "status_checks": sandbox.status_checks_of(order["id"]),
        "receipts": [cashbox.parse(body) for body in sandbox.receipts_of(order["id"])],
    }


@bp.get("/")
@bp.get("/_sandbox/")
def overview():
    """Show orders, their callbacks and the faults in force."""
    sandbox = _sandbox()
    return render_template(
        "operator.html",
        orders=[_order_details(order) for order in sandbox.orders()],
        shops=sandbox.shops(),
        faults=sandbox.faults.as_dict(),
        type_names=cashbox.TYPE_NAMES,
        amount=format_amount,
        moment=lambda epoch: format_time(epoch, sandbox.tz),
    )


@bp.get("/_sandbox/shops")
def list_shops():
    """List the shops (never their passwords)."""
    return jsonify(_sandbox().shops())


@bp.post("/_sandbox/shops")
def upsert_shop():
    """Add or replace a shop from a JSON object."""
    data = _json_object()
    unknown = set(data) - SHOP_KEYS
    if unknown:
        return _bad_request(f"unknown keys: {', '.join(sorted(unknown))}")
    shop_id = data.pop("shop_id", "")
    try:
        _sandbox().add_shop(shop_id, **_with_required(data))
    except (TypeError, ValueError) as error:
        return _bad_request(str(error))
    shop = next(s for s in _sandbox().shops() if s["shop_id"] == shop_id)
    return jsonify(shop)


def _with_required(data: dict) -> dict:
    for key in ("password", "login"):
        data.setdefault(key, "")
    return data


@bp.route("/_sandbox/faults", methods=["GET", "POST", "DELETE"])
def faults():
    """Show, merge into or reset the injected faults."""
    current = _sandbox().faults
    if request.method == "POST":
        try:
            current.update(_json_object())
        except ValueError as error:
            return _bad_request(str(error))
    elif request.method == "DELETE":
        current.reset()
    return jsonify(current.as_dict())


@bp.get("/_sandbox/orders")
def list_orders():
    """List order attempts (filter by shop_id, order_id) with their callbacks."""
    sandbox = _sandbox()
    shop_id, order_id = request.args.get("shop_id"), request.args.get("order_id")
    orders = [
        order
        for order in sandbox.orders(limit=1000)
        if (shop_id is None or order["shop_id"] == shop_id)
        and (order_id is None or order["order_id"] == order_id)
    ]
    return jsonify([_order_details(order) for order in orders])


@bp.post("/_sandbox/orders/<path:order_id>/revoke-sbp-binding")
def revoke_sbp_binding(order_id: str):
    """Unbind a parent SBP order's account: its recurrent charges get error 40."""
    shop_id = request.args.get("shop_id")
    changed = _sandbox().revoke_sbp_binding(order_id, shop_id)
    if not changed:
        return jsonify(error="no SBP order with this id"), 404
    return jsonify(order_id=order_id, card_state="revoked")


@bp.post("/_sandbox/orders/<path:order_id>/<any('expire-card', 'block-card'):action>")
def mark_card(order_id: str, action: str):
    """Make a parent order's card expired (AS104) or blocked (AS998, F01)."""
    shop_id = request.args.get("shop_id") or request.form.get("shop_id")
    changed = _sandbox().mark_card(order_id, CARD_STATES[action], shop_id)
    if not changed:
        return jsonify(error=f"no paid order {order_id!r}"), 404
    return jsonify(order_id=order_id, card_state=CARD_STATES[action])
