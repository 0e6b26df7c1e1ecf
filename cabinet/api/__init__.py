"""The ISP's own systems call us here (JSON, bearer tokens with scopes).

autopay: automatic-mode charges; sessions: sign-in links for the ISP's site.
Each route names the scope its token needs.
"""

from . import autopay, sessions  # noqa: F401  (their routes register on bp)
from .common import bp

__all__ = ["bp"]
