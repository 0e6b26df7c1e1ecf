"""RQ job functions: take ids, open their own connection, safe to run twice.

The top of the package: services enqueue these by name (cabinet.queueing) and
never import this module.
"""

from functools import wraps

from flask import current_app, has_app_context

from . import autopay, billing, mail, reconcile, status_check, tasks
from .db import db

_app = None


def use_app(app):
    """Run jobs with this app: `python worker.py` builds it once for its horses."""
    global _app
    _app = app


def _with_app(job):
    """Run a job inside an app context and a database connection of its own."""

    @wraps(job)
    def wrapped(*args, **kwargs):
        global _app
        if has_app_context():
            app = current_app._get_current_object()
        else:
            if _app is None:
                # Built on first use in the worker, never at import time.
                from . import create_app

                _app = create_app()
            app = _app
        with app.app_context(), db.connection_context():
            return job(*args, **kwargs)

    return wrapped


@_with_app
def run_scheduled_task(name):
    """Run a scheduled task for the current cron tick (once, whoever enqueued it)."""
    run = tasks.run_task(
        name, trigger="cron", slot=tasks.current_slot(tasks.TASKS[name])
    )
    return None if run is None else run.id


@_with_app
def run_task_now(name, slot):
    """Run a scheduled task by hand under the slot the console polls for (once)."""
    run = tasks.run_task(name, trigger="manual", slot=slot)
    return None if run is None else run.id


@_with_app
def check_order(transaction_id):
    """Ask Uniteller about one order now (after a return or a status request)."""
    stats = status_check.check_order(transaction_id)
    return {
        "looked_at": stats.looked_at,
        "changed": stats.changed,
        "errors": stats.errors,
    }


@_with_app
def reconcile_run(run_id):
    """Run a reconciliation the console asked for (once)."""
    return reconcile.perform_run(run_id)


@_with_app
def charge_autopay(charge_id):
    """Send one try of an autopay charge (a no-op unless it is due)."""
    return autopay.charge(charge_id)


@_with_app
def charge_autopays(charge_ids):
    """Send one try of each of a batch of charges, side by side (no-ops if not due)."""
    return autopay.charge_many(charge_ids)


@_with_app
def resolve_autopay_charge(charge_id):
    """Find out through /results/ what became of a try whose answer was lost."""
    return autopay.resolve(charge_id)


@_with_app
def email_notice(notice_id):
    """E-mail a notice to its subscriber (once)."""
    return mail.send_notice(notice_id)


@_with_app
def dispatch_billing(delivery_ids):
    """Enqueue a delivery job for each of a web process's gathered deliveries."""
    return billing.dispatch(delivery_ids)


@_with_app
def deliver_billing(delivery_id):
    """Send one delivery to the ISP's billing and record its answer (idempotent)."""
    return billing.deliver(delivery_id)
