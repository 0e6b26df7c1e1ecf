"""The cabinet's blueprint, the subscriber-only guard and what its pages share."""

from functools import wraps

from flask import Blueprint, abort, current_app, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from .. import acquirer
from ..errors import PaymentUnavailable
from .words import payment_state

bp = Blueprint("subscriber", __name__)

UNAVAILABLE = {
    "contract_blocked": _l(
        "Your contract is blocked: payments are not taken. Please contact your "
        "provider."
    ),
    "not_linked": _l(
        "Card payment is not available for your contract. Please contact your provider."
    ),
    "no_active_configuration": _l(
        "Card payment is temporarily unavailable. Please try again later."
    ),
    "configuration_incomplete": _l(
        "Card payment is temporarily unavailable. Please try again later."
    ),
}


@bp.context_processor
def _words():
    """Let the cabinet's templates put a payment in words."""
    return {"payment_state": payment_state}


def contract_required(view):
    """Let only a logged-in subscriber in; staff get 403."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not getattr(current_user, "is_contract", False):
            abort(403, _l("This page is for subscribers: log in with a contract."))
        return view(*args, **kwargs)

    return wrapped


def availability(contract):
    """Return (configuration, None) if card payment is open, else (None, why)."""
    try:
        return acquirer.payment_gateway(contract)[1], None
    except PaymentUnavailable as exc:
        return None, UNAVAILABLE[exc.message]


def public_url(endpoint, **values):
    """Build an absolute URL on PUBLIC_URL (what we tell Uniteller)."""
    return current_app.config["PUBLIC_URL"] + url_for(endpoint, **values)
