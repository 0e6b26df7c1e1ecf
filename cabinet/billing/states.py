"""The delivery state machine as data, and the backoff of temporary failures."""

# Each state with the states it may follow. `sending` is the unknown outcome: a
# job called the billing and its answer may be lost (a killed worker); it is
# resolved by sending again with the same txn_id / webhook-id once its lease
# ran out, which the billing's own idempotency answers with the first result.
DELIVERY_TRANSITIONS = {
    "sending": ("pending", "sending"),  # a claim; `sending` only past its lease
    "done": ("sending", "failed", "attention"),  # answered 0, or marked by hand
    "pending": ("sending", "failed", "attention"),  # a retry, later or by hand
    "failed": ("sending",),  # a final answer, or retries exhausted
    "attention": ("sending", "pending"),  # nothing we may send: a person decides
}
# What an operator is asked to look at (the console's needs-attention list).
NEEDS_ATTENTION = ("failed", "attention")

# Seconds to wait after the n-th temporary failure (the last one repeats), until
# BILLING_RETRY_DAYS have passed since the delivery was made.
BACKOFF = (60, 300, 900, 3600, 3 * 3600, 6 * 3600)


def backoff(attempts):
    """Return the seconds to wait after `attempts` tries that failed for now."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]
