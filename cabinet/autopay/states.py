"""Define the autopay charge's states, which may follow which, and its dunning."""

from datetime import timedelta

from ..clock import utcnow
from ..models import AutopayCharge

DUE = "due"
# The unknown outcome. A try is stored as "sending" from the moment it is claimed,
# before the request goes out: a worker may die or an answer be lost at any point
# after that, so until a callback, the status check or /results/ says what became
# of the try, nothing may send another one.
UNKNOWN = "sending"
# Uniteller has not seen the try (no slot was free, or /results/ does not know
# its order): the same order id goes again.
RESEND = "resend"
SUCCEEDED = "succeeded"
RETRY = "retry"
FAILED = "failed"
SKIPPED = "skipped"
CANCELED = "canceled"

# Which statuses may move to which: the compare-and-set conditions.
FROM = {
    DUE: (RETRY,),  # a soft decline's next try day has come
    UNKNOWN: (DUE, RESEND),  # claimed by one worker
    RESEND: (UNKNOWN,),
    SUCCEEDED: (UNKNOWN, RESEND),
    # From due: the card's failed charges today reached Uniteller's limit.
    RETRY: (DUE, UNKNOWN, RESEND),
    FAILED: (UNKNOWN, RESEND),
    CANCELED: (DUE, RETRY, RESEND),
    SKIPPED: (),  # only ever created so, by the before_charge hook
}
CREATED = (DUE, SKIPPED)
FINAL = (SUCCEEDED, FAILED, SKIPPED, CANCELED)
CLAIMABLE = FROM[UNKNOWN]
# A try exists whose outcome is not recorded yet: a callback may still settle it.
TRYING = (UNKNOWN, RESEND)
# Nothing of these is at Uniteller, so turning autopay off cancels them; a resend
# try may still arrive there and is left to its job, which cancels it unsent.
WAITING = (DUE, RETRY)

# Declines after which retrying the same card is pointless: expired, blocked or
# bad card, fraud, Uniteller's stop code, and recurrent refusals about the parent.
HARD_RESPONSE_CODES = {"AS101", "AS104", "AS108"}
# 40: a bound SBP account the payer unbound (SBP v04 Table 6, "Token not found").
HARD_ERRORS = {22, 23, 25, 26, 27, 40}
# The acquirer's "stop the series" code (with AS998), wherever Uniteller puts it.
STOP_SERIES = "F01"
# Answers that say nothing of the outcome: ask /results/ before sending again.
UNKNOWN_ERRORS = {15, 24, 28}
# Uniteller refuses more failed recurrent charges of one card per day.
FAILED_PER_PARENT_PER_DAY = 2


def allowed(source, target):
    """Return True if the table lets a charge move from `source` to `target`."""
    return source in FROM.get(target, ())


def move(target, *where, among=None, **values):
    """Set the status of the charges matching `where` if the table allows; count them.

    `among` narrows the statuses moved (what the caller read, say); it may not
    name one the table does not allow.
    """
    sources = FROM[target] if among is None else tuple(among)
    refused = [source for source in sources if not allowed(source, target)]
    if refused:
        raise ValueError(f"a charge may not move from {refused} to {target}")
    return (
        AutopayCharge.update(status=target, updated_at=utcnow(), **values)
        .where(*where, AutopayCharge.status.in_(sources))
        .execute()
    )


def is_hard_decline(code, message, error_code=""):
    """Return True if a decline says the card will not pay, whatever the day.

    Uniteller's stop code F01 (v1.43 §4.3.2) comes as the processing centre's
    Error_Code, or inside AS998's message: wherever it appears, the series stops.
    """
    code = (code or "").upper()
    number = code.lstrip("E")
    return (
        code in HARD_RESPONSE_CODES
        or STOP_SERIES in (error_code or "").upper()
        or STOP_SERIES in (message or "").upper()
        or number.isdigit()
        and int(number) in HARD_ERRORS
    )


def after_decline(hard, tries, retry_days):
    """Return the status a declined try leaves its charge in: retry or failed."""
    return RETRY if not hard and tries <= retry_days else FAILED


def next_try_on(today):
    """Return the local date a declined or deferred charge is tried again."""
    return today + timedelta(days=1)
