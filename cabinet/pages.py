"""Helpers the blueprints share: period filters in TIMEZONE, page-or-fragment."""

from datetime import date, timedelta

from flask import abort, make_response, render_template, request
from flask_babel import gettext as _

from .clock import EARLIEST_DAY, LATEST_DAY, day_in_range, local_midnight_utc


def parse_date(args, name):
    """Read an optional YYYY-MM-DD argument; 400 if it is not a date we work with."""
    value = args.get(name, "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        abort(400, _("%(name)s: expected a date YYYY-MM-DD", name=name))
    if not day_in_range(day):
        abort(
            400,
            _(
                "%(name)s: a date from %(first)s to %(last)s",
                name=name,
                first=EARLIEST_DAY,
                last=LATEST_DAY,
            ),
        )
    return day


# Deeper pages than anyone reads; an offset beyond it would overflow SQL integers.
LAST_PAGE = 100_000


def page_number():
    """Read ?page= (1 to LAST_PAGE); 400 otherwise."""
    page = request.args.get("page", "1")
    if not page.isdigit() or not 1 <= int(page) <= LAST_PAGE:
        abort(400, _("The page must be a number from 1 to %(last)d.", last=LAST_PAGE))
    return int(page)


def page_of(rows, page, size):
    """Describe one page of a list fetched with one row more than a page.

    The extra row only tells whether there is a next page.
    """
    return {"rows": rows[:size], "has_next": len(rows) > size, "page": page}


def parse_period(args):
    """Read the period filter (local dates, inclusive) as naive UTC [start, end)."""
    start, end = parse_date(args, "from"), parse_date(args, "to")
    return (
        local_midnight_utc(start) if start else None,
        local_midnight_utc(end + timedelta(days=1)) if end else None,
    )


def wants_fragment():
    """True for an htmx request that is not a history restore (that wants the page)."""
    return bool(request.headers.get("HX-Request")) and not request.headers.get(
        "HX-History-Restore-Request"
    )


def page_or_fragment(page_template, fragment_template, status=200, **context):
    """Render the page, or only its fragment for htmx; Vary on HX-Request."""
    template = fragment_template if wants_fragment() else page_template
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response
