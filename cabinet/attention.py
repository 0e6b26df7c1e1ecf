"""What an operator must look at: flagged orders, refunds in flight, overdue orders."""

import operator
from datetime import timedelta
from functools import reduce

from . import billing, fiscal
from . import params as module_params
from .clock import utcnow
from .models import (
    BillingDelivery,
    Contract,
    ModuleConfiguration,
    Refund,
    Transaction,
)

# Orders still waiting for the subscriber: past their form's lifetime they are
# stuck (the status check expires them once Uniteller has nothing to say).
OPEN_STATUSES = ("new", "waiting")
KINDS = ("review", "refunds", "overdue", "receipts", "billing")


def flagged():
    """Select the transactions flagged for an operator's review."""
    return (
        Transaction.select(Transaction, Contract)
        .join(Contract)
        .where(
            Transaction.needs_review == True  # noqa: E712
        )
    )


def refunds_pending():
    """Select the refunds Uniteller has not finished yet."""
    return (
        Refund.select(Refund, Transaction)
        .join(Transaction)
        .where(Refund.status == "pending")
    )


def overdue(margin, now=None):
    """Select the orders still open `margin` after their configuration's lifetime."""
    now = now or utcnow()
    by_lifetime = {}
    for configuration in ModuleConfiguration.select(
        ModuleConfiguration.id, ModuleConfiguration.params
    ):
        lifetime = int(module_params.effective(configuration.params)["lifetime"])
        by_lifetime.setdefault(lifetime, []).append(configuration.id)
    # One condition per distinct lifetime (a handful), not one per configuration.
    past = [
        Transaction.configuration.in_(ids)
        & (Transaction.created_at < now - timedelta(seconds=lifetime) - margin)
        for lifetime, ids in by_lifetime.items()
    ]
    query = Transaction.select(Transaction, Contract).join(Contract)
    if not past:
        return query.where(Transaction.id.is_null())
    return query.where(
        Transaction.status.in_(OPEN_STATUSES), reduce(operator.or_, past)
    )


def deliveries():
    """Select the billing deliveries that need a person."""
    return BillingDelivery.select().where(
        BillingDelivery.state.in_(billing.NEEDS_ATTENTION)
    )


def lists(margin, limit=200):
    """The page's lists, newest first, at most `limit` of each."""
    return {
        "review": list(flagged().order_by(Transaction.updated_at.desc()).limit(limit)),
        "refunds": list(
            refunds_pending().order_by(Refund.created_at.desc()).limit(limit)
        ),
        "overdue": list(
            overdue(margin).order_by(Transaction.created_at.desc()).limit(limit)
        ),
    }


def counts(margin):
    """Count each kind of work: one COUNT query each."""
    troubled, waiting = fiscal.attention_queries()
    return {
        "review": flagged().count(),
        "refunds": refunds_pending().count(),
        "overdue": overdue(margin).count(),
        "receipts": troubled.count() + waiting.count(),
        "billing": deliveries().count(),
    }
