"""The subscriber's cabinet: home, paying, history and autopay, on one blueprint."""

# Importing the sections registers their routes on bp.
from . import autopay, history, home, paying, quick_pay  # noqa: F401
from .blueprint import bp

__all__ = ["bp"]
