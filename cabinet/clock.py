"""Time: UTC as the database keeps it, and the ISP's local dates (TIMEZONE)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

# The dates a person may type: wider than any payment's, and far enough from
# year 1 and 9999 that turning them into UTC cannot overflow.
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2100, 12, 31)


def day_in_range(day):
    """True if a typed date is one the cabinet works with (EARLIEST_DAY..LATEST_DAY)."""
    return EARLIEST_DAY <= day <= LATEST_DAY


def utcnow():
    """Now in UTC, naive (the database keeps UTC without a zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def local_timezone():
    """Return the ISP's timezone (TIMEZONE)."""
    return ZoneInfo(current_app.config["TIMEZONE"])


def local_date(moment):
    """Return the ISP-local date of a stored (naive UTC) time."""
    return moment.replace(tzinfo=UTC).astimezone(local_timezone()).date()


def local_today(now=None):
    """Return today's date in TIMEZONE (of `now`, a naive UTC time, if given)."""
    return local_date(now or utcnow())


def local_midnight_utc(day):
    """Return the start of a local day as naive UTC (what the database keeps)."""
    local = datetime.combine(day, time.min, tzinfo=local_timezone())
    return local.astimezone(UTC).replace(tzinfo=None)


def local_period_utc(first, last):
    """Turn local dates (inclusive) into naive UTC bounds [start, end)."""
    return local_midnight_utc(first), local_midnight_utc(last + timedelta(days=1))
