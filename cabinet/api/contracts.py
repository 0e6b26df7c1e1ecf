"""/api/contracts: the ISP's scripts create, update, read, list and block contracts."""

from datetime import datetime

from flask import jsonify, request

from .. import contract_sync
from ..errors import NotFound
from ..models import Contract
from ..money import format_signed
from .common import (
    bp,
    decode_cursor,
    encode_cursor,
    json_object,
    page_size,
    requires,
    utc_text,
)


def contract_json(contract):
    """A contract as the API shows it (never its password hash)."""
    billing = contract.billing_balance
    return {
        "number": contract.number,
        "name": contract.name,
        "email": contract.email,
        "phone": contract.phone,
        "instance": contract.instance.code if contract.instance_id else None,
        "status": contract.status,
        "source": contract.source,
        "balance": format_signed(contract.balance),
        "billing_balance": None if billing is None else format_signed(billing),
        "billing_balance_at": utc_text(contract.billing_balance_at),
        "has_password": bool(contract.password_hash),
        "created_at": utc_text(contract.created_at),
        "updated_at": utc_text(contract.updated_at),
    }


def _known(number):
    contract = Contract.by_number(contract_sync.valid_number(number))
    if contract is None:
        raise NotFound("unknown contract")
    return contract


@bp.route("/contracts/<path:number>", methods=["PUT"])
@requires("contracts")
def put_contract(number):
    """Create (201) or update (200) a contract from a JSON object of its fields."""
    contract, created = contract_sync.upsert(number, json_object(), "api")
    return jsonify(contract_json(contract)), 201 if created else 200


@bp.route("/contracts/<path:number>", methods=["GET"])
@requires("contracts")
def get_contract(number):
    """Read one contract."""
    return jsonify(contract_json(_known(number)))


@bp.route("/contracts/<path:number>", methods=["DELETE"])
@requires("contracts")
def block_contract(number):
    """Block a contract: never a delete (its money history stays)."""
    _known(number)
    return jsonify(contract_json(contract_sync.block(number)))


@bp.route("/contracts", methods=["GET"])
@requires("contracts")
def list_contracts():
    """Contracts changed since `updated_since`, keyset-paged by (updated_at, id)."""
    limit = page_size()
    since = request.args.get("updated_since")
    if since is not None:
        since = contract_sync.moment(since, "updated_since")
    after = request.args.get("after")
    if after is not None:
        moment, row = decode_cursor("after", after, (str, int))
        after = (datetime.fromisoformat(moment), row)
    rows = contract_sync.changed(since, after, limit + 1)
    items, more = rows[:limit], len(rows) > limit
    last = items[-1] if items else None
    cursor = encode_cursor(last.updated_at.isoformat(), last.id) if more else None
    return jsonify({"items": [contract_json(c) for c in items], "next": cursor})
