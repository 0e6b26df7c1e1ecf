"""Subscribers' contracts and console operators: create, find, link."""

import re

from peewee import IntegrityError
from werkzeug.security import generate_password_hash

from .db import db
from .errors import CabinetError, Conflict, NotFound
from .models import Contract, Operator


def link_contract(contract, instance):
    """Link a contract to a module instance (None: unlink it)."""
    Contract.update(instance=instance).where(Contract.id == contract.id).execute()
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


def add_contract(number, name, password, email=None, instance=None):
    """Create a subscriber's contract."""
    number = number.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}", number):
        raise CabinetError("contract number: letters, digits and / _ . - (up to 64)")
    if not name.strip():
        raise CabinetError("contract name must not be empty")
    if len(password) < 4:
        raise CabinetError("password: at least 4 characters")
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
    if len(password) < 8:
        raise CabinetError("operator password: at least 8 characters")
    try:
        with db.atomic():
            return Operator.create(
                login=login,
                password_hash=generate_password_hash(password),
                role="admin" if admin else "operator",
            )
    except IntegrityError:
        raise Conflict(f"operator {login!r} exists already") from None
