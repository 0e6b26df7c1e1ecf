"""GET /api/openapi.json: the API's description (no token: it holds no secret)."""

from pathlib import Path

from flask import current_app

from .common import bp

SPEC = Path(__file__).with_name("openapi.json")


@bp.route("/openapi.json", methods=["GET"])
def openapi():
    """Serve the hand-written OpenAPI 3.1 file."""
    return current_app.response_class(
        SPEC.read_text(encoding="utf-8"), mimetype="application/json"
    )
