"""The provider's own logic calls us here: automatic-mode charges (token-protected)."""

import hashlib
import hmac
import secrets

from flask import Blueprint, jsonify, request

from . import autopay
from .clock import utcnow
from .errors import CabinetError
from .models import ApiToken
from .money import AmountError, format_wire, parse_amount

bp = Blueprint("api", __name__, url_prefix="/api")


def hash_token(token):
    """Hash an API token for storage and look-up (the token itself is never kept)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(name):
    """Create an API token; return (row, the token, shown this once only)."""
    token = "cab_" + secrets.token_urlsafe(32)
    row = ApiToken.create(name=name, token_hash=hash_token(token))
    return row, token


def _authorised():
    """True if the request carries a valid, unrevoked Bearer token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    row = ApiToken.get_or_none(ApiToken.token_hash == hash_token(token.strip()))
    return bool(
        row
        and row.revoked_at is None
        and hmac.compare_digest(row.token_hash, hash_token(token.strip()))
    )


def _error(status, reason, **extra):
    return jsonify({"error": reason, **extra}), status


@bp.route("/autopay/charge", methods=["POST"])
def charge():
    """Ask for an automatic-mode charge: {"contract", "amount", "reason", "key"}."""
    if not _authorised():
        return _error(401, "a valid API token is required (Authorization: Bearer …)")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "expected a JSON object")
    number = body.get("contract")
    if not isinstance(number, str) or not number:
        return _error(400, "contract: the contract number, a string")
    try:
        amount = parse_amount(str(body.get("amount", "")))
    except AmountError as exc:
        return _error(400, f"amount: {exc}")
    reason = body.get("reason", "")
    key = body.get("key")
    if not isinstance(reason, str) or (key is not None and not isinstance(key, str)):
        return _error(400, "reason and key must be strings")
    try:
        result = autopay.request_charge(
            number, amount, reason[:300], source="api", key=key
        )
    except CabinetError as exc:
        if exc.status_code == 404:
            return _error(404, "unknown contract")
        if exc.status_code == 409:
            return _error(409, "the contract's autopay is not on in automatic mode")
        if exc.message == "amount_out_of_range":
            return _error(
                400,
                "amount out of the configuration's range",
                min=format_wire(exc.details["low"]),
                max=format_wire(exc.details["high"]),
            )
        return _error(400, exc.message)
    return jsonify(
        {
            "charge": result.id,
            "period": result.period,
            "status": result.status,
            "amount": format_wire(result.amount),
            "requested_at": utcnow().isoformat() + "Z",
        }
    ), 202
