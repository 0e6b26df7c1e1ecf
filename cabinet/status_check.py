"""Ask /results/ about orders nothing else has finished, and apply the answers."""

import logging
from datetime import UTC, timedelta
from itertools import groupby

from flask import current_app

from . import acquirer, payments
from . import params as module_params
from .clock import utcnow
from .db import write_unit
from .extensions import CHECKS_QUEUE_NAME, get_redis
from .models import ModuleConfiguration, ModuleInstance, Transaction
from .queueing import enqueue
from .task_stats import TaskStats
from .uniteller.client import RateLimited, UnitellerError

log = logging.getLogger(__name__)

# Uniteller answers a period of at most 7 days; keep a margin for its clock.
WINDOW = timedelta(days=7) - timedelta(minutes=10)
CLOCK_SKEW = timedelta(minutes=10)
CHANGES = {"credited", "changed", "reversed"}
# Waits between status checks of an order Uniteller does not know yet, or that is
# not final there yet: 5 min, 15 min, 1 h, 6 h, then daily.
CHECK_BACKOFF = (300, 900, 3600, 21600, 86400)
STALE_AFTER = timedelta(days=7)


def due_transactions(now):
    """Select the orders due a check, of instances with an active configuration."""
    active = ModuleConfiguration.select(ModuleConfiguration.instance).where(
        ModuleConfiguration.is_active == True  # noqa: E712
    )
    return (
        Transaction.select()
        .join(ModuleInstance)
        .where(
            Transaction.status.in_(payments.CHECKED_STATUSES),
            Transaction.next_check_at <= now,
            Transaction.instance.in_(active),
        )
        .order_by(Transaction.configuration, Transaction.created_at)
    )


def windows(transactions, now):
    """Split orders (sorted by creation) into periods Uniteller accepts."""
    batch = []
    for transaction in transactions:
        if (
            batch
            and transaction.created_at - batch[0].created_at >= WINDOW - CLOCK_SKEW
        ):
            yield _window(batch, now)
            batch = []
        batch.append(transaction)
    if batch:
        yield _window(batch, now)


def _window(batch, now):
    start = batch[0].created_at - CLOCK_SKEW
    # Uniteller's period has whole minutes: end a minute late rather than cut
    # off this minute's orders.
    end = min(start + WINDOW, now + timedelta(minutes=1))
    return start.replace(tzinfo=UTC), end.replace(tzinfo=UTC), batch


def run(now=None):
    """Check every due order with period queries, within Uniteller's request limit."""
    now = now or utcnow()
    stats = TaskStats()
    due = list(due_transactions(now))
    for _, group in groupby(due, key=lambda t: t.configuration_id):
        group = list(group)
        configuration = group[0].configuration
        client = acquirer.client_for(configuration)
        spacing = acquirer.results_spacing(configuration)
        for start, end, batch in windows(group, now):
            try:
                rows = acquirer.ask_results(
                    client, spacing, stats, start=start, end=end
                )
            except RateLimited as exc:
                # Uniteller's pacing, not a fault: the next run asks again.
                stats.notes.append(f"asked to wait: {exc}")
                log.info("status check: shop %s: %s", client.shop_id, exc)
                break
            except UnitellerError as exc:
                # Nothing changes; the next run asks again.
                stats.errors += 1
                stats.notes.append(str(exc))
                log.warning("status check: shop %s: %s", client.shop_id, exc)
                break
            _apply(batch, rows, now, stats)
    return stats


def check_order(transaction_id, now=None):
    """Check one order now (a subscriber came back, or Uniteller asked about it)."""
    now = now or utcnow()
    stats = TaskStats()
    transaction = Transaction.get_or_none(Transaction.id == transaction_id)
    if transaction is None or transaction.status not in payments.CHECKED_STATUSES:
        return stats
    client = acquirer.client_for(transaction.configuration)
    try:
        rows = acquirer.ask_results(
            client,
            acquirer.results_spacing(transaction.configuration),
            stats,
            order_id=transaction.order_id,
        )
    except RateLimited as exc:
        # Not an error: the periodic check asks about this order again.
        stats.notes.append(f"asked to wait: {exc}")
        log.info("order check %s: %s", transaction.order_id, exc)
        return stats
    except UnitellerError as exc:
        stats.errors += 1
        stats.notes.append(str(exc))
        log.warning("order check %s: %s", transaction.order_id, exc)
        return stats
    _apply([transaction], rows, now, stats)
    return stats


def _apply(batch, rows, now, stats):
    """Apply the rows Uniteller returned to our orders, and plan their next checks."""
    by_order = {row.get("OrderNumber"): row for row in rows}
    unreadable = rows.unreadable
    if unreadable:
        stats.errors += len(unreadable)
        stats.notes.append(f"{len(unreadable)} result row(s) did not parse")
    for transaction in batch:
        stats.looked_at += 1
        row = by_order.get(transaction.order_id)
        # A row that did not parse may be this order's: it is not unknown there.
        found = row is not None or rows.names_unreadable(transaction.order_id)
        try:
            if row is not None:
                outcome = payments.apply_status(
                    transaction.order_id,
                    row.get("Status"),
                    source="status",
                    fields=row,
                    instance=transaction.instance,
                )
                stats.changed += outcome.result in CHANGES
            planned = plan_next_check(transaction.id, found, now)
            stats.changed += planned == "expired"
        except Exception as exc:  # one bad row must not stop the run
            stats.errors += 1
            stats.notes.append(f"{transaction.order_id}: {type(exc).__name__}")
            log.exception("status check of %s failed", transaction.order_id)


def request_order_check(transaction, reason, delay=None):
    """Enqueue one check of an open order, once per order however often it is asked."""
    if transaction.status not in payments.CHECKED_STATUSES:
        return False
    if delay is None:
        delay = current_app.config["RETURN_CHECK_DELAY"]
    key = f"cabinet:order-check:{transaction.id}"
    # One job per order for a while: a page refresh must not multiply requests.
    if not get_redis().set(key, reason, nx=True, ex=max(600, delay * 2)):
        return False
    enqueue(
        "check_order", transaction.id, delay=delay, timeout=600, queue=CHECKS_QUEUE_NAME
    )
    return True


def plan_next_check(transaction_id, found, now):
    """Plan an order's next status check by the backoff; expire or flag it when due."""
    margin = timedelta(seconds=current_app.config["STATUS_CHECK_EXPIRE_MARGIN"])
    with write_unit():
        transaction = Transaction.get_by_id(transaction_id)
        lifetime = timedelta(
            seconds=int(
                module_params.effective(transaction.configuration.params)["lifetime"]
            )
        )
        payable_until = transaction.created_at + lifetime + margin
        result = "scheduled"
        if transaction.status == "new" and not found and now >= payable_until:
            result = "expired" if payments.expire_unseen(transaction) else "scheduled"
        transaction = Transaction.get_by_id(transaction_id)
        attempts = transaction.check_attempts + 1
        if transaction.status not in payments.CHECKED_STATUSES or (
            # A failed order may still be paid on a retry while its form lives.
            transaction.status == "failed" and now >= payable_until
        ):
            next_check = None
        else:
            wait = CHECK_BACKOFF[min(attempts, len(CHECK_BACKOFF)) - 1]
            next_check = now + timedelta(seconds=wait)
        Transaction.update(check_attempts=attempts, next_check_at=next_check).where(
            Transaction.id == transaction_id
        ).execute()
        if (
            next_check
            and now - transaction.created_at >= STALE_AFTER
            and not transaction.needs_review
        ):
            payments.flag_for_review(transaction, "status", "still open after 7 days")
            result = "flagged"
    return result
