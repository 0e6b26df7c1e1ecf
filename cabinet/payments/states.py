"""The payment state machine as data: which status may follow which.

`new` is the state of an unknown outcome: the order exists, the pay page may or
may not have been used, and no answer about it has reached us. The status check
resolves it (paid, failed, or expired after the form's lifetime) before anything
is retried; nothing is ever charged again on a guess.
"""

from ..models import CREDITED_STATUSES

# The statuses a payment may move to, each with the statuses it may move from:
# the conditions of the compare-and-set (a status not listed as a target is
# never set by a report from Uniteller).
TRANSITIONS = {
    "authorized": ("new", "waiting", "failed", "expired"),
    "paid": ("new", "waiting", "authorized", "failed", "expired"),
    "waiting": ("new",),
    "failed": ("new", "waiting", "expired"),
    "canceled": ("new", "waiting", "authorized", "paid", "failed", "expired"),
}
# Ours alone, never reported: an order Uniteller did not see within its lifetime.
EXPIRES_FROM = ("new",)
# The statuses that credit the contract, and the one that takes it back.
CREDITING = CREDITED_STATUSES
REVERSING = "canceled"
# The statuses the status check asks Uniteller about (not final yet).
CHECKED_STATUSES = ("new", "waiting", "authorized", "failed")
