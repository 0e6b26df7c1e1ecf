"""POST /api/sessions: the ISP's site asks for a single-use sign-in link."""

from flask import current_app, g, jsonify, request

from .. import handoff
from ..contract_sync import FieldError
from ..errors import Conflict, NotFound
from .common import Refusal, bp, requires


@bp.route("/sessions", methods=["POST"])
@requires("sessions")
def create_session():
    """Make a sign-in link for {"contract", "next"}: 201 {"url", "expires_at"}."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Refusal(400, "expected a JSON object")
    number = body.get("contract")
    if not isinstance(number, str) or not number.strip():
        raise Refusal(400, "contract: the contract number, a string", field="contract")
    try:
        token, row = handoff.create(number.strip(), body.get("next"), g.api_token)
    except FieldError as exc:
        refusal = Refusal(400, exc.message, field=exc.field)
        refusal.body["reason"] = exc.reason  # Refusal's own argument is `reason`
        raise refusal from None
    except NotFound:
        raise Refusal(404, "unknown contract") from None
    except Conflict:
        raise Refusal(409, "the contract is blocked") from None
    return jsonify(
        {
            "url": f"{current_app.config['PUBLIC_URL']}/handoff/{token}",
            "expires_at": row.expires_at.isoformat(timespec="seconds") + "Z",
        }
    ), 201
