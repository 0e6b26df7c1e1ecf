"""Read the query arguments several sections share: page, cursor, status, instance."""

from flask import abort, render_template, request

from .. import configurations, monitor
from ..models import STATUSES, ModuleInstance

STATUS_FILTERS = ("success", *STATUSES)


def cursor():
    """Read ?after= (a keyset cursor); 400 if it is not one."""
    after = request.args.get("after", "")
    if after:
        try:
            monitor.decode_cursor(after)
        except ValueError:
            abort(400, "after: not a cursor")
    return after or None


def status_filter():
    """Read ?status= (one of STATUS_FILTERS, or empty for all); 400 otherwise."""
    status = request.args.get("status", "")
    if status and status not in STATUS_FILTERS:
        abort(400, "unknown status")
    return status


def instances():
    """Return every module instance, by code."""
    return list(ModuleInstance.select().order_by(ModuleInstance.code))


def chosen_instance(args):
    """Return the instance ?instance= names, or the only one; None: ask which."""
    if args.get("instance"):
        return configurations.get_instance(args["instance"])
    first_two = list(ModuleInstance.select().order_by(ModuleInstance.code).limit(2))
    return first_two[0] if len(first_two) == 1 else None


def choose_instance(endpoint):
    """Ask which module instance a page is about, keeping the other parameters."""
    kept = {k: v for k, v in request.args.items() if k != "instance"}
    return render_template(
        "console/choose-instance.html",
        endpoint=endpoint,
        args=kept,
        instances=instances(),
    )
