"""Contracts from the ISP's systems (API, CSV import): check fields, upsert, block.

One set of rules for every way in: a field is checked here, once, and a
record is either taken whole or refused whole with the field and the reason.
"""

from datetime import UTC, datetime

from peewee import JOIN, IntegrityError, Tuple
from werkzeug.security import generate_password_hash

from . import accounts
from .clock import utcnow
from .db import db, write_unit
from .errors import CabinetError, Conflict, NotFound
from .models import Contract, ModuleInstance
from .money import AmountError, to_kopecks

FIELDS = (
    "name",
    "email",
    "phone",
    "instance",
    "status",
    "billing_balance",
    "billing_balance_at",
    "password",
)
STATUSES = ("active", "blocked")
# billing: made by /quick-pay for a number the billing's OSMP `check` confirmed.
SOURCES = ("hand", "api", "import", "billing")
NAME_LENGTH_MAX = 200
PASSWORD_LENGTH_MAX = 128


class FieldError(CabinetError):
    """One field of a contract record is wrong: which, and why."""

    def __init__(self, field, reason):
        super().__init__(f"{field}: {reason}", field=field, reason=reason)
        self.field, self.reason = field, reason


def valid_number(number):
    """Return a contract number stripped, or raise FieldError."""
    number = number.strip() if isinstance(number, str) else ""
    if not accounts.valid_contract_number(number):
        raise FieldError("number", "letters, digits and / _ . - (up to 64)")
    return number


def _text(field, value):
    if not isinstance(value, str):
        raise FieldError(field, "a string")
    return value.strip()


def moment(value, field="billing_balance_at"):
    """An ISO 8601 time ("2026-12-01T10:00:00Z", an offset, or UTC) as naive UTC."""
    try:
        taken = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise FieldError(field, "an ISO 8601 time, e.g. 2026-12-01T10:00:00Z") from None
    if taken.tzinfo is not None:
        taken = taken.astimezone(UTC).replace(tzinfo=None)
    return taken


def _balance(value):
    """The billing's balance in roubles ("-123.45", 123.45, 12) as kopecks."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError("billing_balance", 'an amount such as "-123.45"')
    text = value if isinstance(value, str) else repr(value)
    try:
        return to_kopecks(text.strip().replace(",", "."))
    except AmountError:
        raise FieldError(
            "billing_balance", 'an amount with at most 2 decimals, e.g. "-123.45"'
        ) from None


def changes_of(record, creating):
    """Check a record's fields; return the columns to write (FieldError if off).

    Keys not given change nothing; null (None) clears an e-mail or phone and
    removes the password (the contract then signs in only by a handoff).
    """
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise FieldError(unknown[0], f"unknown field; known: {', '.join(FIELDS)}")
    changes = {}
    if "name" in record:
        name = _text("name", record["name"])
        if not name or len(name) > NAME_LENGTH_MAX:
            raise FieldError("name", f"1 to {NAME_LENGTH_MAX} characters")
        changes["name"] = name
    elif creating:
        raise FieldError("name", "required for a new contract")
    if "email" in record:
        email = _text("email", record["email"] or "")
        if email and not accounts.valid_email(email):
            raise FieldError("email", "not an e-mail address")
        changes["email"] = email or None
    if "phone" in record:
        phone = _text("phone", record["phone"] or "")
        normalized = accounts.normalize_phone(phone) if phone else ""
        if normalized is None:
            raise FieldError("phone", "not a phone number, e.g. +79161234567")
        changes["phone"] = normalized or None
    if "instance" in record:
        code = record["instance"]
        instance = ModuleInstance.by_code(code) if isinstance(code, str) else None
        if code is not None and instance is None:
            raise FieldError("instance", "no module instance with this code")
        changes["instance"] = instance
    if "status" in record:
        if record["status"] not in STATUSES:
            raise FieldError("status", f"one of {', '.join(STATUSES)}")
        changes["status"] = record["status"]
    if record.get("billing_balance") is not None:
        changes["billing_balance"] = _balance(record["billing_balance"])
        at = record.get("billing_balance_at")
        changes["billing_balance_at"] = utcnow() if at is None else moment(at)
    elif "billing_balance" in record:
        changes["billing_balance"] = changes["billing_balance_at"] = None
    elif "billing_balance_at" in record:
        raise FieldError("billing_balance_at", "given without billing_balance")
    if "password" in record:
        password = record["password"]
        if password is None:
            changes["password_hash"] = ""
        else:
            changes["password_hash"] = generate_password_hash(valid_password(password))
    return changes


def valid_password(password):
    """Return a password stripped, or raise FieldError (the import hashes apart)."""
    password = _text("password", password)
    if not 4 <= len(password) <= PASSWORD_LENGTH_MAX:
        raise FieldError("password", f"4 to {PASSWORD_LENGTH_MAX} characters, or null")
    return password


def _ends_sessions(contract, changes):
    """True if the change must end the contract's sessions (blocked, new password)."""
    return changes.get("status") == "blocked" or "password_hash" in changes


def upsert(number, record, source, changes=None, create_only=False):
    """Create or update contract `number` from a record; return (contract, created).

    `changes` (from changes_of) spares a caller that checked first the second
    check. Nothing is written if any field is wrong. With `create_only`, a
    contract that exists (made meanwhile by the API or an import) is left as
    it is: Conflict.
    """
    number = valid_number(number)
    with write_unit():
        accounts.hold_changes()
        contract = Contract.by_number(number)
        creating = contract is None
        if create_only and not creating:
            raise Conflict(f"contract {number!r} exists already")
        if changes is None:
            changes = changes_of(record, creating)
        now = utcnow()
        if creating:
            try:
                contract = Contract.create(
                    number=number,
                    password_hash=changes.pop("password_hash", ""),
                    source=source,
                    created_at=now,
                    updated_at=now,
                    **changes,
                )
            except IntegrityError:  # created beside us since the read
                raise Conflict(
                    f"contract {number!r} was created meanwhile; retry"
                ) from None
            return contract, True
        if changes:
            columns = {**changes, "updated_at": now}
            if _ends_sessions(contract, changes):
                columns["session_generation"] = Contract.session_generation + 1
            Contract.update(columns).where(Contract.id == contract.id).execute()
        return Contract.get_by_id(contract.id), False


def block(number):
    """Block a contract (never delete it: its money history stays); its sessions end."""
    contract = Contract.by_number(valid_number(number))
    if contract is None:
        raise NotFound(f"no contract {number!r}")
    return upsert(number, {"status": "blocked"}, contract.source)[0]


def changed(since, after, limit):
    """Contracts whose updated_at is at or after `since`, in (updated_at, id) order
    past the position `after` (or from the start), at most `limit`."""
    with db.atomic():
        accounts.hold_changes(shared=True)  # changes under way commit first
        query = Contract.select(Contract, ModuleInstance).join(
            ModuleInstance, JOIN.LEFT_OUTER
        )
        if since is not None:
            query = query.where(Contract.updated_at >= since)
        if after is not None:
            query = query.where(Tuple(Contract.updated_at, Contract.id) > Tuple(*after))
        return list(query.order_by(Contract.updated_at, Contract.id).limit(limit))
