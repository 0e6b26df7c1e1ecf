"""Who may use the console (operators; some views admins only); template helpers."""

from datetime import UTC
from functools import wraps

from flask import abort
from flask_babel import gettext as _
from flask_login import current_user, login_required

from .. import params as module_params
from ..clock import local_timezone
from .blueprint import bp
from .wording import (
    DELIVERY_KINDS,
    DELIVERY_STATES,
    DOCUMENT_TYPES,
    EVENT_KINDS,
    KIND_LABELS,
    PARAM_LABELS,
    RECEIPT_KINDS,
    RECEIPT_STATES,
    REFUND_STATUSES,
    TASK_DESCRIPTIONS,
    VERSION_ACTIONS,
    event_source,
    note_words,
)


def operator_required(admin=False):
    """Let only operators in (only admins with admin=True); others get 403."""

    def decorate(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not getattr(current_user, "is_operator", False):
                abort(403, _("The console is for the provider's staff only."))
            if admin and current_operator().role != "admin":
                abort(403, _("Only an administrator may do this."))
            return view(*args, **kwargs)

        return wrapped

    return decorate


def current_operator():
    """Return the logged-in operator (the view must require an operator)."""
    return current_user.operator


@bp.context_processor
def console_helpers():
    """Give console templates the operator's role and the wording of codes."""
    is_admin = bool(
        getattr(current_user, "is_operator", False)
        and current_user.operator.role == "admin"
    )
    return {
        "is_admin": is_admin,
        "refund_statuses": REFUND_STATUSES,
        "secret_params": module_params.SECRET_PARAMS,
        "param_labels": PARAM_LABELS,
        "kind_labels": KIND_LABELS,
        "version_actions": VERSION_ACTIONS,
        "receipt_states": RECEIPT_STATES,
        "receipt_kinds": RECEIPT_KINDS,
        "document_types": DOCUMENT_TYPES,
        "delivery_kinds": DELIVERY_KINDS,
        "delivery_states": DELIVERY_STATES,
        "event_kinds": EVENT_KINDS,
        "event_source": event_source,
        "note_words": note_words,
        "task_descriptions": TASK_DESCRIPTIONS,
        "to_the_second": to_the_second,
    }


def to_the_second(moment):
    """A stored (naive UTC) time as the ISP's local dd.mm.yyyy hh:mm:ss."""
    if moment is None:
        return ""
    local = moment.replace(tzinfo=UTC).astimezone(local_timezone())
    return local.strftime("%d.%m.%Y %H:%M:%S")
