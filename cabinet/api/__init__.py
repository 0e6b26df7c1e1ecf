"""The ISP's own systems call us here (JSON, bearer tokens with scopes).

autopay: automatic-mode charges; contracts: create, update, read, list, block;
payments: the feed of credits, reversals and refunds; sessions: sign-in links for
the ISP's site; openapi: the description. Each route names the scope its token needs.
"""

from . import autopay, contracts, openapi, payments, sessions  # noqa: F401  (routes)
from .common import bp

__all__ = ["bp"]
