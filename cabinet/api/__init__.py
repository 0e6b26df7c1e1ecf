"""The ISP's own systems call us here (JSON, bearer tokens with scopes).

autopay: automatic-mode charges; contracts: create, update, read, list, block;
payments: the feed of credits, reversals and refunds; openapi: the description.
Each route names the scope its token needs.
"""

from . import autopay, contracts, openapi, payments  # noqa: F401  (routes on bp)
from .common import bp

__all__ = ["bp"]
