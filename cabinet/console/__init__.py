"""The operator console: one module per section, all on the one blueprint `bp`."""

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console")

# The sections register their routes on bp, so they come after it.
from . import (  # noqa: E402,F401
    access,
    audit,
    autopay,
    configurations,
    contracts,
    instances,
    monitor,
    orphans,
    reconcile,
    session,
    tasks,
    transactions,
)
