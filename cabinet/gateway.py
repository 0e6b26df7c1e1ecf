"""Uniteller's calls to us: payment callbacks (signed, CSRF-exempt)."""

from flask import Blueprint, request

from . import payments

bp = Blueprint("gateway", __name__, url_prefix="/uniteller")


def _callback_fields():
    """Collect a callback's fields: query string, then form or JSON body on top."""
    fields = request.args.to_dict()
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            fields.update({str(k): v for k, v in body.items()})
    else:
        fields.update(request.form.to_dict())
    return fields


@bp.route("/<code>/notify", methods=["POST"])
def notify(code):
    """Receive a payment callback: verify, apply once, answer 200 quickly."""
    outcome = payments.receive_callback(code, _callback_fields())
    return outcome.result, 200, {"Content-Type": "text/plain"}
