"""The operator console: one module per section, all on the one blueprint `bp`."""

# Importing the sections registers their routes on bp.
from . import (  # noqa: F401
    access,
    attention,
    audit,
    autopay,
    billing,
    configurations,
    contracts,
    imports,
    instances,
    monitor,
    orphans,
    receipts,
    reconcile,
    session,
    tasks,
    transactions,
)
from .blueprint import bp

__all__ = ["bp"]
