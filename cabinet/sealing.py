"""Secrets at rest: a configuration's shop password and login, a connector's
password or webhook secret are kept encrypted (Fernet) in the database.

The key lives in the environment (SECRETS_KEY), never in the database, so a
copy of the database or of its backups holds no usable secret. SECRETS_KEY may
list several keys, comma-separated: the first seals, every one unseals (key
rotation: put the new key first, run `flask secrets reseal`, drop the old).
Without SECRETS_KEY the key is derived from SECRET_KEY (which is in the same
environment file); that derived key always opens too, so setting SECRETS_KEY
and resealing moves old secrets to it.
"""

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app, has_app_context

PREFIX = "sealed:v1:"


class SealError(RuntimeError):
    """A sealed secret cannot be opened with the configured keys."""


def derived_key(secret_key):
    """A Fernet key derived from SECRET_KEY (HMAC-SHA256 with a fixed label)."""
    digest = hmac.new(
        secret_key.encode("utf-8"), b"cabinet secrets at rest", hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).decode()


def init_app(app):
    """Build the app's keys from SECRETS_KEY (or SECRET_KEY); raise on a bad key."""
    keys = [k.strip() for k in app.config["SECRETS_KEY"].split(",") if k.strip()]
    # The key derived from SECRET_KEY opens too, last (it seals only when no
    # SECRETS_KEY is set): setting SECRETS_KEY and running `secrets reseal`
    # moves what was sealed under it, after which SECRET_KEY may change.
    keys.append(derived_key(app.config["SECRET_KEY"]))
    try:
        app.extensions["sealing"] = MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        raise SealError(
            "SECRETS_KEY: each key must be 32 url-safe base64-encoded bytes "
            "(make one: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        ) from None


def _ring():
    # Per app, not per process: two apps in one process may hold different keys.
    if not has_app_context() or "sealing" not in current_app.extensions:
        raise SealError("no keys for secrets: outside the app (create_app sets them)")
    return current_app.extensions["sealing"]


def is_sealed(value):
    """True if a stored value is a sealed secret."""
    return isinstance(value, str) and value.startswith(PREFIX)


def seal(value):
    """Encrypt a secret's text for storage (an empty one stays empty)."""
    if not value or is_sealed(value):
        return value
    return PREFIX + _ring().encrypt(value.encode("utf-8")).decode("ascii")


def unseal(value):
    """Decrypt a stored secret; a plain (not yet sealed) value is returned as is."""
    if not is_sealed(value):
        return value
    try:
        return _ring().decrypt(value[len(PREFIX) :].encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SealError(
            "a secret in the database cannot be opened with SECRETS_KEY: a wrong "
            "or missing key (the one it was sealed with must be listed)"
        ) from None


def reseal(value):
    """Seal a stored secret again with the first key (rotation)."""
    return seal(unseal(value)) if value else value
