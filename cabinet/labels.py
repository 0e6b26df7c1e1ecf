"""The words people read for stored values: payment, autopay and charge statuses."""

from flask_babel import lazy_gettext as _l

STATUS_LABELS = {
    "success": _l("Successful"),
    "new": _l("New"),
    "waiting": _l("Waiting"),
    "authorized": _l("Authorized"),
    "paid": _l("Paid"),
    "canceled": _l("Canceled"),
    "failed": _l("Failed"),
    "expired": _l("Expired"),
}


def status_label(status):
    """Name a status in the reader's language."""
    return STATUS_LABELS.get(status, status)


AUTOPAY_MODE_LABELS = {
    "weekly": _l("Weekly"),
    "monthly": _l("Monthly"),
    "automatic": _l("Automatic (decided by the provider)"),
}
AUTOPAY_STATE_LABELS = {
    "binding": _l("Waiting for the card payment"),
    "active": _l("On"),
    "suspended": _l("Paused: a new card is needed"),
    "off": _l("Off"),
}
CHARGE_STATUS_LABELS = {
    "due": _l("Due"),
    "sending": _l("In progress"),
    "resend": _l("In progress"),
    "succeeded": _l("Charged"),
    "retry": _l("Declined, will retry"),
    "failed": _l("Declined"),
    "skipped": _l("Skipped"),
    "canceled": _l("Canceled"),
}
CONTRACT_SOURCE_LABELS = {
    "hand": _l("By hand"),
    "api": _l("API"),
    "import": _l("CSV import"),
    "billing": _l("Quick pay, confirmed by the billing"),
}
CONTRACT_STATUS_LABELS = {"active": _l("In service"), "blocked": _l("Blocked")}
