"""The ISP's own systems call us here (JSON, bearer tokens with scopes).

autopay: automatic-mode charges. Each route names the scope its token needs.
"""

from . import autopay  # noqa: F401  (its routes register on bp)
from .common import bp

__all__ = ["bp"]
