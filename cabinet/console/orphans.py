"""Orphan callbacks: signed messages about orders we do not have."""

from flask import render_template

from ..models import TransactionEvent
from .access import operator_required
from .blueprint import bp


@bp.route("/orphans")
@operator_required()
def orphans():
    """List the newest signed callbacks and answers about orders we do not have."""
    rows = list(TransactionEvent.orphans().limit(200))
    return render_template("console/orphans.html", rows=rows)
