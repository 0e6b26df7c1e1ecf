"""Retention: delete raw event rows older than EVENT_RETENTION_DAYS, in batches."""

import logging
from datetime import timedelta

from flask import current_app

from .clock import utcnow
from .db import write_unit
from .models import Transaction, TransactionEvent
from .task_stats import TaskStats

log = logging.getLogger(__name__)

BATCH = 1000


def run(now=None):
    """Delete old events (never transactions or ledger rows); keep reviewed orders'."""
    stats = TaskStats()
    days = current_app.config["EVENT_RETENTION_DAYS"]
    if days <= 0:
        stats.notes.append("EVENT_RETENTION_DAYS is 0: events are kept forever")
        return stats
    cutoff = (now or utcnow()) - timedelta(days=days)
    # An order an operator still has to review keeps its whole history.
    under_review = Transaction.select(Transaction.id).where(Transaction.needs_review)
    old = TransactionEvent.select(TransactionEvent.id).where(
        TransactionEvent.created_at < cutoff,
        TransactionEvent.transaction.is_null()
        | TransactionEvent.transaction.not_in(under_review),
    )
    while True:
        # Short batches: each holds the write lock briefly, beside live payments.
        with write_unit():
            ids = [row.id for row in old.limit(BATCH)]
            if ids:
                TransactionEvent.delete().where(TransactionEvent.id.in_(ids)).execute()
        stats.looked_at += len(ids)
        stats.changed += len(ids)
        if len(ids) < BATCH:
            break
    log.info("retention: %d events older than %d days deleted", stats.changed, days)
    return stats
