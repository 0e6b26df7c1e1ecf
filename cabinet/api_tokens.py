"""API tokens of the provider's own logic: made once, kept only as a hash."""

import hashlib
import hmac
import secrets

from .clock import utcnow
from .models import ApiToken


def hash_token(token):
    """Hash an API token for storage and look-up (the token itself is never kept)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(name):
    """Create an API token; return (row, the token, shown this once only)."""
    token = "cab_" + secrets.token_urlsafe(32)
    row = ApiToken.create(name=name, token_hash=hash_token(token))
    return row, token


def revoke_token(name):
    """Revoke the active token NAME; False if there is none."""
    return bool(
        ApiToken.update(revoked_at=utcnow())
        .where(ApiToken.name == name, ApiToken.revoked_at.is_null())
        .execute()
    )


def token_is_valid(token):
    """True if `token` is a known, unrevoked API token."""
    hashed = hash_token(token.strip())
    row = ApiToken.get_or_none(ApiToken.token_hash == hashed)
    return bool(
        row and row.revoked_at is None and hmac.compare_digest(row.token_hash, hashed)
    )
