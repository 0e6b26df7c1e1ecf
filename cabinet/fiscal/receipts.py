"""Build the receipt JSON Uniteller fiscalizes (fiscal 02.1.18, Appendix 1).

Types are as the spec's Appendix 9 insists: only `customer.*` values and a
line's `name` are strings; every other value is an unquoted JSON number, the
money ones written "%d.%02d".
"""

import base64
import json

from .. import params as module_params
from ..errors import CabinetError
from ..money import format_wire

# Appendix 3: a bank card payment.
CARD_PAYMENT = {"kind": 1, "type": 0}


class ContactRequired(CabinetError):
    """A fiscal payment needs the payer's e-mail or phone, and the contract has none."""

    status_code = 409


class Money:
    """Kopecks, written as a JSON number with two decimals (500.00)."""

    __slots__ = ("kopecks",)

    def __init__(self, kopecks):
        self.kopecks = int(kopecks)


def dumps(value):
    """Write JSON compactly, Money as "%d.%02d" numbers, text as UTF-8."""
    if isinstance(value, Money):
        return format_wire(value.kopecks)
    if isinstance(value, dict):
        return "{" + ",".join(f"{dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        raise TypeError("a receipt has no booleans or nulls")
    if isinstance(value, (int, str)):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"not a receipt value: {type(value).__name__}")


def encode(receipt):
    """Return the base64 text of a receipt's UTF-8 JSON (what is sent and signed)."""
    return base64.b64encode(dumps(receipt).encode("utf-8")).decode("ascii")


def decode(body):
    """Read back a receipt's base64 text into its JSON object."""
    return json.loads(base64.b64decode(body, validate=True).decode("utf-8"))


def contact_of(contract):
    """Return the customer block of a contract's receipts; ContactRequired if none."""
    if contract.email:
        return {"email": contract.email}
    if contract.phone:
        return {"phone": contract.phone}
    raise ContactRequired("contact_required")


def line_name(profile, contract_number):
    """The receipt line's name for a contract: CP866 only, at most 128 characters."""
    name = module_params.render_fiscal_line(profile["fiscal_line"], contract_number)
    # The template was checked when saved; a contract number is ASCII by its
    # own rule, so this only guards the length of an unusually long one.
    name = "".join(c if not module_params.cp866_only(c) else "?" for c in name)
    return name[: module_params.FISCAL_LINE_MAX]


def build_sale(profile, contract, amount):
    """The receipt of a payment of `amount` kopecks to a contract's account."""
    line = {
        "name": line_name(profile, contract.number),
        "price": Money(amount),
        "qty": 1,
        "sum": Money(amount),
        "vat": int(profile["fiscal_vat"]),
        "payattr": int(profile["fiscal_payattr"]),
        "lineattr": int(profile["fiscal_lineattr"]),
    }
    receipt = {}
    if profile["fiscal_ffd"] == "1.2":
        # FFD 1.2: a sale on the Internet (tag 1125) names its site (Appendix 1 В).
        receipt["internet"] = 1
    receipt["customer"] = {**contact_of(contract), "id": contract.number}
    receipt["taxmode"] = int(profile["fiscal_taxmode"])
    receipt["lines"] = [line]
    if profile["fiscal_ffd"] == "1.2":
        receipt["params"] = {"place": profile["fiscal_place"]}
    receipt["payments"] = [{**CARD_PAYMENT, "amount": Money(amount)}]
    receipt["total"] = Money(amount)
    return receipt


def build_refund(sale_body, amount):
    """The refund receipt of part or all of a sale: its line and taxes, `amount`.

    Made from the sale's own frozen receipt, so the refund carries the payment
    method and VAT the sale was fiscalized with, whatever the profile says now.
    """
    sale = decode(sale_body)
    (line,) = sale["lines"]
    receipt = {}
    if "internet" in sale:
        receipt["internet"] = sale["internet"]
    receipt["customer"] = sale["customer"]
    receipt["taxmode"] = sale["taxmode"]
    receipt["lines"] = [
        {
            "name": line["name"],
            "price": Money(amount),
            "qty": 1,
            "sum": Money(amount),
            "vat": line["vat"],
            "payattr": line["payattr"],
            "lineattr": line["lineattr"],
        }
    ]
    if "params" in sale:
        receipt["params"] = sale["params"]
    receipt["payments"] = [{**CARD_PAYMENT, "amount": Money(amount)}]
    receipt["total"] = Money(amount)
    return receipt


def contact_text(receipt):
    """Where a receipt is sent: its e-mail or phone."""
    customer = receipt.get("customer", {})
    return customer.get("email") or customer.get("phone") or ""
