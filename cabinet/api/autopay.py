"""POST /api/autopay/charge: the provider's logic asks for an automatic-mode charge."""

from flask import jsonify, request

from .. import autopay
from ..clock import utcnow
from ..errors import CabinetError
from ..money import AmountError, format_wire, parse_amount
from .common import Refusal, bp, requires


def _charge_request(body):
    """Read {"contract", "amount", "reason", "key"}; raise Refusal(400) if off."""
    if not isinstance(body, dict):
        raise Refusal(400, "expected a JSON object")
    number = body.get("contract")
    if not isinstance(number, str) or not number:
        raise Refusal(400, "contract: the contract number, a string")
    try:
        amount = parse_amount(str(body.get("amount", "")))
    except AmountError as exc:
        raise Refusal(400, f"amount: {exc}") from None
    reason, key = body.get("reason", ""), body.get("key")
    if not isinstance(reason, str) or (key is not None and not isinstance(key, str)):
        raise Refusal(400, "reason and key must be strings")
    return number, amount, reason[:300], key


def _charge_refusal(exc):
    """Word a refused charge for the provider's script."""
    if exc.status_code == 404:
        return Refusal(404, "unknown contract")
    if exc.message == "key_reused":
        return Refusal(
            409,
            "this key was used for another amount or reason",
            charge=exc.details["charge"],
        )
    if exc.status_code == 409:
        return Refusal(409, "the contract's autopay is not on in automatic mode")
    if exc.message == "amount_out_of_range":
        return Refusal(
            400,
            "amount out of the configuration's range",
            min=format_wire(exc.details["low"]),
            max=format_wire(exc.details["high"]),
        )
    return Refusal(400, exc.message)


@bp.route("/autopay/charge", methods=["POST"])
@requires("autopay")
def charge():
    """Ask for an automatic-mode charge: {"contract", "amount", "reason", "key"}."""
    number, amount, reason, key = _charge_request(request.get_json(silent=True))
    try:
        result = autopay.request_charge(number, amount, reason, source="api", key=key)
    except CabinetError as exc:
        raise _charge_refusal(exc) from None
    return jsonify(
        {
            "charge": result.id,
            "period": result.period,
            "status": result.status,
            "amount": format_wire(result.amount),
            "requested_at": utcnow().isoformat() + "Z",
        }
    ), 202
