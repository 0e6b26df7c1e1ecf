"""Single-use sign-in links the ISP's site asks for: made, kept as a hash, used once."""

import hashlib
import logging
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app

from .clock import utcnow
from .contract_sync import FieldError
from .errors import CabinetError, Conflict, NotFound
from .models import Contract, SignInHandoff

log = logging.getLogger(__name__)

# Where a handoff may send the subscriber: the cabinet's own pages.
NEXT_PATHS = ("/", "/pay", "/autopay", "/payments")
NEXT_LENGTH_MAX = 500


class HandoffRefused(CabinetError):
    """A sign-in link that cannot sign anyone in: used, expired, unknown, blocked."""

    status_code = 410


class HandoffBlocked(HandoffRefused):
    """A sign-in link of a contract blocked since it was made."""

    status_code = 403


def hash_token(token):
    """Hash a handoff token for storage and look-up (the token is never kept)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def valid_next(next_url):
    """Return a handoff's `next` (a page of ours, maybe with a query) or raise."""
    if next_url is None or next_url == "":
        return None
    try:
        parts = urlsplit(next_url) if isinstance(next_url, str) else None
    except ValueError:  # "//[" and the like: not a URL at all
        parts = None
    if (
        parts is None
        or len(next_url) > NEXT_LENGTH_MAX
        or any(c in next_url for c in "\\\r\n\t")
        or parts.scheme
        or parts.netloc
        or parts.fragment
        or parts.path not in NEXT_PATHS
    ):
        raise FieldError(
            "next",
            f"a page of the cabinet: one of {', '.join(NEXT_PATHS)}, optionally "
            f"with a query string (up to {NEXT_LENGTH_MAX} characters)",
        )
    return next_url.rstrip("?")


def create(number, next_url=None, api_token=None):
    """Make a sign-in link for contract `number`: return (token, its row).

    NotFound for an unknown contract, Conflict for a blocked one, FieldError
    for a `next` that is not a page of ours.
    """
    next_url = valid_next(next_url)
    contract = Contract.by_number(number) if isinstance(number, str) else None
    if contract is None:
        raise NotFound("unknown contract")
    if contract.status != "active":
        raise Conflict("the contract is blocked")
    token = secrets.token_urlsafe(32)
    seconds = current_app.config["HANDOFF_SECONDS"]
    row = SignInHandoff.create(
        token_hash=hash_token(token),
        contract=contract,
        api_token=api_token,
        next_url=next_url,
        expires_at=utcnow() + timedelta(seconds=seconds),
    )
    return token, row


def _why_refused(hashed, now):
    """Name why a token's compare-and-set found nothing (for the log only)."""
    row = SignInHandoff.get_or_none(SignInHandoff.token_hash == hashed)
    if row is None:
        return None, "unknown"
    return row, "used" if row.used_at is not None else "expired"


def use(token, ip):
    """Use a sign-in link once: return its (contract, next) or raise HandoffRefused."""
    hashed = hash_token(token)
    now = utcnow()
    # Compare-and-set: of two requests with one link, exactly one gets in.
    taken = (
        SignInHandoff.update(used_at=now, used_ip=(ip or "")[:64])
        .where(
            SignInHandoff.token_hash == hashed,
            SignInHandoff.used_at.is_null(),
            SignInHandoff.expires_at > now,
        )
        .execute()
    )
    if taken != 1:
        row, why = _why_refused(hashed, now)
        log.info(
            "sign-in handoff refused: %s",
            why,
            extra={"handoff": row.id if row else None, "ip": ip},
        )
        raise HandoffRefused(why)
    row = SignInHandoff.get(SignInHandoff.token_hash == hashed)
    contract = Contract.get_by_id(row.contract_id)
    if contract.status != "active":
        log.info(
            "sign-in handoff refused: blocked",
            extra={"handoff": row.id, "contract": contract.number, "ip": ip},
        )
        raise HandoffBlocked("blocked")
    log.info(
        "sign-in handoff used",
        extra={"handoff": row.id, "contract": contract.number, "ip": ip},
    )
    return contract, row.next_url
