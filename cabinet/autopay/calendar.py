"""Say what is due when: local dates, due days, periods and the next charge date."""

import calendar
from datetime import timedelta

from ..models import AutopayCharge


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
