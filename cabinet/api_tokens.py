"""API tokens of the provider's own logic: made once, kept only as a hash, scoped."""

import hashlib
import hmac
import secrets

from .clock import utcnow
from .errors import CabinetError
from .models import ApiToken

# What a token may call: each /api/ route names the one scope it needs.
SCOPES = {
    "autopay": "ask for automatic-mode autopay charges",
    "contracts": "create, update, read and block contracts",
    "payments": "read the feed of credited payments, reversals and refunds",
    "sessions": "ask for single-use sign-in links (the ISP's site)",
}
DEFAULT_SCOPES = ("autopay",)  # what tokens made before scopes existed could do


def hash_token(token):
    """Hash an API token for storage and look-up (the token itself is never kept)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def valid_scopes(scopes):
    """Return the scopes as a sorted tuple; raise CabinetError on an unknown one."""
    scopes = tuple(sorted(set(scopes or DEFAULT_SCOPES)))
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise CabinetError(
            f"unknown scope {unknown[0]!r}: one of {', '.join(sorted(SCOPES))}"
        )
    return scopes


def create_token(name, scopes=None):
    """Create an API token; return (row, the token, shown this once only)."""
    scopes = valid_scopes(scopes)
    token = "cab_" + secrets.token_urlsafe(32)
    row = ApiToken.create(
        name=name, token_hash=hash_token(token), scopes=" ".join(scopes)
    )
    return row, token


def revoke_token(name):
    """Revoke the active token NAME; False if there is none."""
    return bool(
        ApiToken.update(revoked_at=utcnow())
        .where(ApiToken.name == name, ApiToken.revoked_at.is_null())
        .execute()
    )


def token_row(token):
    """Return the known, unrevoked ApiToken row of `token`, or None."""
    hashed = hash_token(token.strip())
    row = ApiToken.get_or_none(ApiToken.token_hash == hashed)
    if row and row.revoked_at is None and hmac.compare_digest(row.token_hash, hashed):
        return row
    return None


def scopes_of(row):
    """The scopes a token row holds, as a set."""
    return set((row.scopes or "").split())


def token_is_valid(token, scope="autopay"):
    """True if `token` is a known, unrevoked API token holding `scope`."""
    row = token_row(token)
    return bool(row and scope in scopes_of(row))
