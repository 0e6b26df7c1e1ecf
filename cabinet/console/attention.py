"""Needs attention: the operator's work lists in one page, their counts in the nav."""

from datetime import timedelta

from flask import current_app, render_template, request

from .. import attention
from .access import operator_required
from .blueprint import bp
from .forms import ActionForm
from .wording import review_reason

bp.add_app_template_filter(review_reason, "review_reason")


def _margin():
    """The status check's grace after a form's lifetime (STATUS_CHECK_EXPIRE_MARGIN)."""
    return timedelta(seconds=current_app.config["STATUS_CHECK_EXPIRE_MARGIN"])


def attention_counts():
    """Count each list once per request; called only by the full page's nav."""
    # Kept in the request's environ, not in g: an app context may outlive a request.
    kept = request.environ
    if "cabinet.attention_counts" not in kept:
        kept["cabinet.attention_counts"] = attention.counts(_margin())
    return kept["cabinet.attention_counts"]


@bp.context_processor
def nav_counts():
    """Give console templates the counts of the nav (computed when asked)."""
    return {"attention_counts": attention_counts}


@bp.route("/attention")
@operator_required()
def attention_page():
    """List flagged orders, refunds in flight, overdue orders; link the other lists."""
    return render_template(
        "console/attention.html",
        counts=attention_counts(),
        action_form=ActionForm(),
        **attention.lists(_margin()),
    )
