"""Subscribers' contracts and console operators: create, find, link."""

import re
import secrets

from peewee import IntegrityError, PostgresqlDatabase
from werkzeug.security import check_password_hash, generate_password_hash

from .clock import utcnow
from .db import db, write_unit
from .errors import CabinetError, Conflict, NotFound
from .models import Contract, Operator

# PostgreSQL advisory lock: writers of contracts hold it exclusively from before
# they take updated_at until they commit; the API's list holds it shared while
# it reads. So no change with an updated_at below what a page returned can
# commit after the page was read (the list's keyset would skip it).
CHANGES_LOCK = 0x636F6E74  # "cont"


def hold_changes(shared=False):
    """Take the contract-changes lock for the current transaction (PostgreSQL).

    Once per transaction: an import upserting many rows in one unit asks once.
    """
    if not isinstance(db.obj, PostgresqlDatabase):
        return
    top = db.top_transaction()
    held = getattr(top, "holds_contract_changes", None)
    if held == "exclusive" or (shared and held == "shared"):
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    db.execute_sql(f"SELECT {function}(%s)", (CHANGES_LOCK,))
    if top is not None:
        top.holds_contract_changes = "shared" if shared else "exclusive"


def _change_contract(contract, **columns):
    """Write a contract's own fields by hand, moving updated_at under the lock."""
    with write_unit():
        hold_changes()
        Contract.update(**columns, updated_at=utcnow()).where(
            Contract.id == contract.id
        ).execute()


def link_contract(contract, instance):
    """Link a contract to a module instance (None: unlink it)."""
    _change_contract(contract, instance=instance)
    return Contract.get_by_id(contract.id)


# RFC 5321's longest address; Uniteller's page takes 64 (the client leaves a
# longer one out, and the payer types one there).
EMAIL_LENGTH_MAX = 254


def valid_email(email):
    """Tell whether a text is one plain e-mail address (ASCII, no spaces)."""
    return (
        len(email) <= EMAIL_LENGTH_MAX
        and email.isascii()
        and re.fullmatch(r"[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+", email)
        is not None
    )


def normalize_phone(text):
    """Return a phone number as +<digits> (E.164), or None if it is not one.

    A Russian number may be typed as 8XXXXXXXXXX or with spaces, dashes and
    brackets; it becomes +7XXXXXXXXXX.
    """
    if not isinstance(text, str) or len(text) > 32:
        return None
    digits = re.sub(r"[\s()-]", "", text.strip())
    if re.fullmatch(r"8\d{10}", digits):
        digits = "+7" + digits[1:]
    elif re.fullmatch(r"7\d{10}", digits):
        digits = "+" + digits
    if not re.fullmatch(r"\+[1-9]\d{9,14}", digits):
        return None
    return digits


def set_contact(contract, email=None, phone=None):
    """Keep a contract's e-mail and/or phone (where its receipts go); validated."""
    changes = {}
    if email is not None:
        email = email.strip()
        if email and not valid_email(email):
            raise CabinetError(f"not an e-mail address: {email[:80]!r}")
        changes["email"] = email or None
    if phone is not None:
        normalized = normalize_phone(phone) if phone.strip() else ""
        if normalized is None:
            raise CabinetError(f"not a phone number: {phone[:32]!r}")
        changes["phone"] = normalized or None
    if changes:
        _change_contract(contract, **changes)
    return Contract.get_by_id(contract.id)


def _valid_contract_password(password):
    if len(password) < 4:
        raise CabinetError("password: at least 4 characters")


def _valid_operator_password(password):
    if len(password) < 8:
        raise CabinetError("operator password: at least 8 characters")


def valid_contract_number(number):
    """Tell whether a text is a contract number: letters, digits and / _ . - (≤ 64)."""
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}", number) is not None


def add_contract(number, name, password, email=None, instance=None):
    """Create a subscriber's contract."""
    number = number.strip()
    if not valid_contract_number(number):
        raise CabinetError("contract number: letters, digits and / _ . - (up to 64)")
    if not name.strip():
        raise CabinetError("contract name must not be empty")
    _valid_contract_password(password)
    if email and not valid_email(email):
        raise CabinetError(f"not an e-mail address: {email[:80]!r}")
    try:
        with db.atomic():
            return Contract.create(
                number=number,
                name=name.strip(),
                email=email or None,
                password_hash=generate_password_hash(password),
                instance=instance,
            )
    except IntegrityError:
        raise Conflict(f"contract {number!r} exists already") from None


def get_contract(number):
    """Return a contract by number or raise NotFound."""
    contract = Contract.by_number(number)
    if contract is None:
        raise NotFound(f"no contract {number!r}")
    return contract


def add_operator(login, password, admin=False):
    """Create a console operator (role admin or operator)."""
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", login):
        raise CabinetError("operator login: letters, digits and _ . @ - (up to 64)")
    _valid_operator_password(password)
    try:
        with db.atomic():
            return Operator.create(
                login=login,
                password_hash=generate_password_hash(password),
                role="admin" if admin else "operator",
            )
    except IntegrityError:
        raise Conflict(f"operator {login!r} exists already") from None


def get_operator(login):
    """Return an operator by login or raise NotFound."""
    operator = Operator.get_or_none(Operator.login == login)
    if operator is None:
        raise NotFound(f"no operator {login!r}")
    return operator


# A hash of a random password, made like the accounts' own, once at import: made
# on first use, the first unknown login of a process would cost two hashes.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))


def password_matches(account, password):
    """True if an active account's password is this one; as slow for any account.

    An unknown or inactive account is checked against a dummy hash, so the
    answer takes as long as for a real one and timing tells nobody which exist.
    """
    # A contract without a password (handoff only) is refused like a stranger.
    if (
        account is None
        or not getattr(account, "is_active", True)
        or not account.password_hash
    ):
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(account.password_hash, password)


def end_sessions(account):
    """End every session of a contract or an operator (they are refused from now on)."""
    model = type(account)
    model.update(session_generation=model.session_generation + 1).where(
        model.id == account.id
    ).execute()


def set_contract_password(number, password):
    """Give a contract a new password; its sessions end."""
    _valid_contract_password(password)
    return _set_password(get_contract(number), password)


def set_operator_password(login, password):
    """Give an operator a new password; their sessions end."""
    _valid_operator_password(password)
    return _set_password(get_operator(login), password)


def _set_password(account, password):
    """Store an account's new password hash and end its sessions, in one update."""
    model = type(account)
    model.update(
        password_hash=generate_password_hash(password),
        session_generation=model.session_generation + 1,
    ).where(model.id == account.id).execute()
    return account


def set_operator_active(login, active):
    """Let an operator in again, or shut them out (their sessions end at once)."""
    operator = get_operator(login)
    changes = {Operator.is_active: active}
    if not active:
        changes[Operator.session_generation] = Operator.session_generation + 1
    Operator.update(changes).where(Operator.id == operator.id).execute()
    return Operator.get_by_id(operator.id)
