"""The API's blueprint, its refusals as JSON, and the token check by scope."""

from functools import wraps

from flask import Blueprint, g, jsonify, request

from ..api_tokens import scopes_of, token_row

bp = Blueprint("api", __name__, url_prefix="/api")


class Refusal(Exception):
    """An API request refused: its HTTP status, reason and details as JSON."""

    def __init__(self, status, reason, **extra):
        super().__init__(reason)
        self.status, self.body = status, {"error": reason, **extra}


@bp.errorhandler(Refusal)
def _refused(refusal):
    return jsonify(refusal.body), refusal.status


def requires(scope):
    """Let a route in only with a valid Bearer token holding `scope` (401, 403)."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            row = token_row(token) if scheme.lower() == "bearer" and token else None
            if row is None:
                raise Refusal(
                    401, "a valid API token is required (Authorization: Bearer …)"
                )
            if scope not in scopes_of(row):
                raise Refusal(403, f"this token lacks the {scope!r} scope")
            g.api_token = row
            return view(*args, **kwargs)

        wrapped.scope = scope  # the OpenAPI test reads it
        return wrapped

    return decorate
