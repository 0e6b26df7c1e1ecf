"""Autopay: set-up, what is due when, the daily run, the charges and their dunning."""

from . import listeners  # noqa: F401  (connects autopay to the payments signal)
from .calendar import due_on, next_charge_date, period_of
from .charging import charge, charge_many, kill_point, resolve, settle_try, suspend
from .notices import notify
from .planning import STUCK_AFTER, request_charge, run
from .setup import (
    MODES,
    TERMS_VERSION,
    AutopayError,
    allowed_modes,
    autopay_of,
    bind_succeeded,
    configure,
    start_binding,
    summary,
    turn_off,
)
from .states import FAILED_PER_PARENT_PER_DAY

__all__ = [
    "FAILED_PER_PARENT_PER_DAY",
    "MODES",
    "STUCK_AFTER",
    "TERMS_VERSION",
    "AutopayError",
    "allowed_modes",
    "autopay_of",
    "bind_succeeded",
    "charge",
    "charge_many",
    "configure",
    "due_on",
    "kill_point",
    "next_charge_date",
    "notify",
    "period_of",
    "request_charge",
    "resolve",
    "run",
    "settle_try",
    "start_binding",
    "summary",
    "suspend",
    "turn_off",
]
