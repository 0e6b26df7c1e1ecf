"""A receipt's states: the transition table, as data (Kill Bill's habit)."""

# pending: sent with its order or refund, no fiscalized document yet (the state
#   for an unknown outcome: the callback may be late or lost, /v2/results decides);
# issued: Uniteller fiscalized it (a FiscalDocument of its type is kept);
# failed: Uniteller said it could not (53: the payment was reversed; 50: the
#   refund was not made), or the order was reversed before any receipt came;
# missing: the money moved without it (54, or no receipt long after payment):
#   on the operators' "paid, no receipt" list until one is found;
# void: the order was never paid, so no receipt was due.
RECEIPT_TRANSITIONS = {
    # new state: the states it may come from
    "issued": ("pending", "missing", "failed"),
    "failed": ("pending",),
    "missing": ("pending",),
    "void": ("pending",),
    # An order declined or expired may still be paid later (a late report).
    "pending": ("void",),
}
RECEIPT_STATES = ("pending", "issued", "failed", "missing", "void")
# What an operator must look at.
NEEDS_ATTENTION = ("missing", "failed")

# fiscal.type of a fiscalized receipt (fiscal 02.1.18, Appendix 2).
SALE, REFUND, SALE_CORRECTION, REFUND_CORRECTION = 0, 1, 2, 3
DOCUMENT_TYPES = {
    SALE: "sale",
    REFUND: "refund",
    SALE_CORRECTION: "sale correction",
    REFUND_CORRECTION: "refund correction",
}
