"""Say what is due when: local dates, due days, periods and the next charge date."""

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from ..models import AutopayCharge, utcnow


def _timezone():
    """Return the ISP's timezone, in which people and schedules read dates."""
    return ZoneInfo(current_app.config["TIMEZONE"])


def local_today(now=None):
    """Return today's date in the ISP's timezone."""
    now = (now or utcnow()).replace(tzinfo=UTC)
    return now.astimezone(_timezone()).date()


def local_date(moment):
    """Return the ISP-local date of a stored UTC time."""
    return local_today(moment)


def local_day_start(day):
    """Return the stored (naive UTC) time at which an ISP-local date begins."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=_timezone())
    return start.astimezone(UTC).replace(tzinfo=None)


def due_on(autopay, day):
    """Return True if a weekly or monthly autopay charges on this local date."""
    if autopay.mode == "weekly":
        return day.weekday() == autopay.weekday
    if autopay.mode == "monthly":
        # A day past the month's end (the 31st in April) falls on its last day.
        last = calendar.monthrange(day.year, day.month)[1]
        return day.day == min(autopay.day_of_month, last)
    return False


def period_of(autopay, day):
    """Name the period a due date belongs to: one charge per period, ever."""
    if autopay.mode == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def charged(autopay, period):
    """Return True if the autopay already has its charge for the period."""
    return (
        AutopayCharge.select()
        .where(AutopayCharge.autopay == autopay, AutopayCharge.period == period)
        .exists()
    )


def next_charge_date(autopay, today):
    """Return the next date a weekly or monthly autopay charges, today included."""
    if autopay.mode not in ("weekly", "monthly") or autopay.state != "active":
        return None
    for offset in range(0, 32):
        day = today + timedelta(days=offset)
        if due_on(autopay, day) and not charged(autopay, period_of(autopay, day)):
            return day
    return None
