"""The API's blueprint, its refusals as JSON, and the token check by scope."""

import base64
import json
from functools import wraps

from flask import Blueprint, g, jsonify, request

from ..api_tokens import scopes_of, token_row
from ..contract_sync import FieldError
from ..errors import CabinetError

bp = Blueprint("api", __name__, url_prefix="/api")
# An API body is one small JSON object: far below the app's MAX_CONTENT_LENGTH.
BODY_MAX = 16 * 1024
PAGE_MAX = 1000


class Refusal(Exception):
    """An API request refused: its HTTP status, reason and details as JSON."""

    def __init__(self, status, reason, **extra):
        super().__init__(reason)
        self.status, self.body = status, {"error": reason, **extra}


@bp.errorhandler(Refusal)
def _refused(refusal):
    return jsonify(refusal.body), refusal.status


@bp.errorhandler(CabinetError)
def _service_refused(exc):
    """A service's refusal: its status, and the field and reason of a FieldError."""
    fields = {k: exc.details[k] for k in ("field", "reason") if k in exc.details}
    return jsonify({"error": exc.message, **fields}), exc.status_code


@bp.before_request
def _refuse_large_bodies():
    if (request.content_length or 0) > BODY_MAX:
        raise Refusal(413, f"the request body is larger than {BODY_MAX} bytes")


def json_object():
    """The request's body as a JSON object (400 otherwise, 413 past BODY_MAX)."""
    data = request.get_data(cache=True)  # a body sent without a length, too
    if len(data) > BODY_MAX:
        raise Refusal(413, f"the request body is larger than {BODY_MAX} bytes")
    try:
        body = json.loads(data)
    except ValueError:
        raise Refusal(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "expected a JSON object")
    return body


def page_size(default=100):
    """The `limit` query parameter: 1 to PAGE_MAX (400 otherwise)."""
    text = request.args.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= PAGE_MAX:
        raise FieldError("limit", f"1 to {PAGE_MAX}")
    return int(text)


def encode_cursor(*parts):
    """An opaque cursor of a page position (strings and integers)."""
    text = json.dumps(parts, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(field, cursor, shape):
    """The position of a cursor made by encode_cursor, its parts of types `shape`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if len(parts) != len(shape) or not all(
            type(p) is t for p, t in zip(parts, shape, strict=True)
        ):
            raise ValueError(cursor)
    except (ValueError, TypeError):
        raise FieldError(field, "not a cursor this API gave") from None
    return parts


def utc_text(moment):
    """A naive UTC time as ISO 8601 with Z (None stays None)."""
    return None if moment is None else moment.isoformat(timespec="microseconds") + "Z"


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
