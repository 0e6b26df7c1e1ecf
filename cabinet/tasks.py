"""What runs on cron and when: the task list, their UTC schedules, runs and records.

The top of the services: it imports the services it runs, and nothing below
imports it back.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter
from flask import current_app
from peewee import IntegrityError

from . import autopay, billing, fiscal, refunds, retention, status_check
from .clock import utcnow
from .db import db
from .models import TaskRun

# Logged under the name the task list had before it moved here.
log = logging.getLogger("cabinet.schedule")


@dataclass(frozen=True)
class Task:
    """A task the cron scheduler runs: what it does and which setting times it."""

    name: str
    run: callable
    cron_setting: str
    description: str


TASKS = {
    task.name: task
    for task in (
        Task(
            "status-check",
            status_check.run,
            "STATUS_CHECK_CRON",
            "asks Uniteller about orders no callback has finished",
        ),
        Task(
            "refund-check",
            refunds.recheck_pending,
            "STATUS_CHECK_CRON",
            "settles refunds whose /unblock/ answer was lost or not final",
        ),
        Task(
            "receipt-check",
            fiscal.recheck.run,
            "STATUS_CHECK_CRON",
            "asks /v2/results for receipts still pending after payment; "
            "marks them missing after RECEIPT_MISSING_MINUTES",
        ),
        Task(
            "autopay",
            autopay.run,
            "AUTOPAY_CRON",
            "charges weekly, monthly and automatic autopays that are due",
        ),
        Task(
            "billing-sweep",
            billing.sweep,
            "BILLING_SWEEP_CRON",
            "sends billing deliveries no job sent (a flushed Redis, a killed worker)",
        ),
        Task(
            "retention",
            retention.run,
            "RETENTION_CRON",
            "deletes raw event rows older than EVENT_RETENTION_DAYS",
        ),
    )
}


class ScheduleError(ValueError):
    """A cron expression that cannot be evaluated."""


def utc_cron(expression, timezone):
    """Turn a cron expression meant in `timezone` into the UTC one RQ evaluates."""
    if not croniter.is_valid(expression):
        raise ScheduleError(f"not a cron expression: {expression!r}")
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected 5 cron fields: {expression!r}")
    minute, hour, dom, month, dow = fields
    offset = datetime.now(ZoneInfo(timezone)).utcoffset()
    offset_minutes = int(offset.total_seconds() // 60)
    if offset_minutes == 0 or not hour.isdigit():
        # "*/5 * * * *" and the like mean the same in every timezone.
        if offset_minutes % 60 and not minute.startswith("*"):
            raise ScheduleError("a half-hour timezone needs a fixed hour and minute")
        return expression
    if not minute.isdigit():
        raise ScheduleError(f"a daily schedule needs a fixed minute: {expression!r}")
    total = int(hour) * 60 + int(minute) - offset_minutes
    day_shift, total = divmod(total, 24 * 60)
    if day_shift and (dom != "*" or month != "*"):
        raise ScheduleError(
            f"{expression!r} crosses midnight in UTC; use day-of-week or a UTC time"
        )
    if day_shift and dow != "*":
        try:
            dow = ",".join(str((int(d) + day_shift) % 7) for d in dow.split(","))
        except ValueError:
            raise ScheduleError(
                f"day-of-week must be numbers: {expression!r}"
            ) from None
    return f"{total % 60} {total // 60} {dom} {month} {dow}"


def cron_of(task, config=None):
    """Return a task's cron expression in UTC, from its setting and TIMEZONE."""
    config = config or current_app.config
    return utc_cron(config[task.cron_setting], config["TIMEZONE"])


def current_slot(task, now=None):
    """Name the latest cron tick at or before now: what a cron-started run serves."""
    now = (now or utcnow()).replace(tzinfo=UTC)
    tick = croniter(cron_of(task), now).get_prev(datetime)
    if croniter.match(cron_of(task), now):
        tick = now.replace(second=0, microsecond=0)
    return tick.strftime("%Y-%m-%dT%H:%MZ")


def run_task(name, trigger="manual", slot=None, now=None):
    """Run a task once and record it; None if this cron tick was already run."""
    task = TASKS[name]
    slot = slot or f"manual:{uuid.uuid4().hex[:12]}"
    try:
        with db.atomic():
            record = TaskRun.create(task=name, slot=slot, trigger=trigger)
    except IntegrityError:
        log.info("task %s: slot %s already run", name, slot)
        return None
    try:
        stats = task.run(now) if now else task.run()
    except Exception as exc:
        TaskRun.update(
            finished_at=utcnow(),
            errors=TaskRun.errors + 1,
            note=f"crashed: {type(exc).__name__}",
        ).where(TaskRun.id == record.id).execute()
        raise
    TaskRun.update(
        finished_at=utcnow(),
        looked_at=stats.looked_at,
        changed=stats.changed,
        errors=stats.errors,
        note="; ".join(stats.notes)[:2000] or None,
    ).where(TaskRun.id == record.id).execute()
    log.info(
        "task %s done: looked at %d, changed %d, errors %d",
        name,
        stats.looked_at,
        stats.changed,
        stats.errors,
    )
    return TaskRun.get_by_id(record.id)
