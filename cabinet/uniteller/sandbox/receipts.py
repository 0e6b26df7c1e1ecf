"""Read and check a Receipt as Uniteller's fiscal gateway does (02.1.18, App. 1).

Codes and texts are the specification's (Appendix 8, chapter 2's scenarios);
where it is silent the choices are listed in docs/sandbox.md, "Fiscalization".
"""

import base64
import binascii
import json
import re
from decimal import Decimal, InvalidOperation

# Appendix 1: the base64 text is at most 29,999 characters.
MAX_RECEIPT_LENGTH = 29999
MAX_LINE_NAME = 128

TAXMODES = frozenset({0, 1, 2, 4, 5})  # Appendix 5
VATS = frozenset({-1, 0, 5, 7, 10, 22, 105, 107, 110, 122})  # Appendix 4
PAYATTRS = frozenset(range(1, 8))  # Appendix 6
LINEATTRS = frozenset([*range(1, 20), 30, 31, 32, 33])  # Appendix 7
UNITS = frozenset(
    [0, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 70, 71, 72, 73]
    + [80, 81, 82, 83, 255]
)  # Appendix 11
GOODSTATUSES = frozenset({1, 2, 3, 4, 5, 6, 255})  # Appendix 13
DOCCODES = frozenset("21 22 26 27 28 31 32 33 34 35 36 37 38 40".split())  # Appendix 12
AGENTATTRS = frozenset({1, 2, 4, 8, 16, 32, 64})  # section 1.3, table 1
# Payment kinds 1-3 (card, e-money, credit organisation) take type 0; kind 4 is a
# merchant's additional means (ДПС), types 1-16 (Appendix 3).
ELECTRONIC_KINDS = frozenset({1, 2, 3})
DPS_KIND = 4
DPS_TYPES = frozenset(range(1, 17))

# The keys of each block: FFD 1.05 (Appendix 1 A) and FFD 1.2 (Appendix 1 В).
TOP_KEYS = frozenset(
    "customer cashier taxmode lines optional params payments total internet "
    "timezone industryProps senderemail additionalRequisite".split()
)
CUSTOMER_KEYS = frozenset(
    "phone email id name inn birthday citizenship doccode docdata address".split()
)
CASHIER_KEYS = frozenset({"name", "inn"})
LINE_KEYS = frozenset(
    "name price qty sum vat payattr lineattr product agent qtypart unit goodstatus "
    "industryProps".split()
)
LINE_REQUIRED = ("name", "price", "qty", "sum", "vat", "payattr", "lineattr")
PRODUCT_KEYS = frozenset({"kt", "exc", "coc", "ncd"})
AGENT_TEXT_KEYS = frozenset(
    "agentphone accopphone opphone opname opinn opaddress operation suppliername "
    "supplierinn supplierphone".split()
)
PAYMENT_KEYS = frozenset({"kind", "type", "id", "amount"})
INDUSTRY_KEYS = frozenset({"id", "date", "number", "values"})

INN_PATTERN = re.compile(r"\d{10,12}")
CASHIER_INN_PATTERN = re.compile(r"\d{12}")
BIRTHDAY_PATTERN = re.compile(r"\d{2}\.\d{2}\.\d{4}")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE_PATTERN = re.compile(r"\+?\d{10,15}")
SUPPLIER_PHONE_PATTERN = re.compile(r"\+7\d{10}|\+7-\d{3}-\d{3}-\d{2}-\d{2}")
HEX_CODE_PATTERN = re.compile(r"0x[0-9A-Fa-f]+")
KOPECK = Decimal("0.01")


class ReceiptError(Exception):
    """A Receipt refused with the specification's code and text.

    `detail` says what exactly is wrong: the sandbox's own words, which Uniteller
    does not give; the views log it and the payment page shows it in a comment.
    """

    def __init__(self, code: int, text: str, detail: str = ""):
        super().__init__(f"{code};{text}")
        self.code = code
        self.text = text
        self.detail = detail


def invalid_format(detail: str) -> ReceiptError:
    """Return error 10, Field Receipt has invalid format."""
    return ReceiptError(10, "Field Receipt has invalid format", detail)


def invalid_payments(detail: str) -> ReceiptError:
    """Return error 12, Field Receipt has invalid payments."""
    return ReceiptError(12, "Field Receipt has invalid payments", detail)


# The other refusals of the receipt checks: code -> text (Appendix 8). Chapter 2
# spells 19 with a Cyrillic "Р", as kept here; Appendix 9 (the page) in Latin.
CASHBOX_NOT_SET = 5
INVALID_SIGNATURE = 11
AGENT_DISABLED = 13
PAYMENT_TYPE_NOT_ALLOWED = 19
TEXTS = {
    CASHBOX_NOT_SET: "Cashbox settings does not set for upoint",
    INVALID_SIGNATURE: "Invalid ReceiptSignature",
    AGENT_DISABLED: "Field agent in Receipt is disabled",
    PAYMENT_TYPE_NOT_ALLOWED: "\u0420ayment type not allowed",
}


def refusal(code: int, detail: str = "") -> ReceiptError:
    """Return the receipt check's refusal with this code and its text."""
    return ReceiptError(code, TEXTS[code], detail)


def check_request(
    text: str, amount: int, *, fiscal_enabled: bool, signature_ok: bool
) -> tuple[dict, str]:
    """Check a request's Receipt in the order of chapter 2; return it and its JSON.

    Format (10), payments (12), the upoint's cashbox (5), the signature (11), an
    agent block (13), a merchant's means (19): steps 3.1.1-3.1.6 of §2.1.2, 5.1.x
    of §2.1.3, 2.x of §2.5.2. The sandbox's shops allow neither agents nor ДПС.
    """
    receipt = decode(text)
    check(receipt, amount)
    if not fiscal_enabled:
        raise refusal(CASHBOX_NOT_SET, "the shop's fiscal setting is off")
    if not signature_ok:
        raise refusal(INVALID_SIGNATURE)
    if has_agent(receipt):
        raise refusal(AGENT_DISABLED, "the sandbox's shops have no agent sales")
    if has_dps(receipt):
        raise refusal(PAYMENT_TYPE_NOT_ALLOWED, "the sandbox's shops have no ДПС")
    return receipt, decode_text(text)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def decode(text: str) -> dict:
    """Decode a Receipt (base64 of UTF-8 JSON) into its object; error 10 if not."""
    if len(text) > MAX_RECEIPT_LENGTH:
        raise invalid_format(f"{len(text)} characters, at most {MAX_RECEIPT_LENGTH}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # A "+" sent unencoded in a URL arrives as a space (Appendix 9, cause 4).
        raise invalid_format("not base64 (a '+' not URL-encoded?)") from None
    try:
        receipt = json.loads(
            raw.decode("utf-8"),
            parse_float=Decimal,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError:
        raise invalid_format("not UTF-8") from None
    except ValueError as error:
        raise invalid_format(f"not JSON: {error}") from None
    if not isinstance(receipt, dict):
        raise invalid_format("not a JSON object")
    return receipt


def encode_text(text: str) -> str:
    """Encode JSON text as a Receipt field carries it: base64 of its UTF-8."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_text(text: str) -> str:
    """Return the JSON text of a Receipt that decode() has accepted."""
    return base64.b64decode(text, validate=True).decode("utf-8")


def _json_decimal(value):
    if isinstance(value, Decimal):
        # Whole values as integers, others as they were written.
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _number(value, where: str) -> Decimal:
    # Appendix 9: only customer.* and a line's name go in quotes; a quoted number,
    # a boolean or null is "invalid format".
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise invalid_format(f"{where} must be a number without quotes, not {value!r}")
    return Decimal(value)


def _integer(value, where: str, allowed=None) -> int:
    number = _number(value, where)
    if number != number.to_integral_value():
        raise invalid_format(f"{where} must be a whole number, not {value}")
    if allowed is not None and int(number) not in allowed:
        raise invalid_format(f"{where} has no value {int(number)}")
    return int(number)


def kopecks(value, where: str, positive: bool = False) -> int:
    """Read a money value: a number with at most two decimals; error 10 if not."""
    number = _number(value, where)
    if number < 0 or (positive and number == 0):
        raise invalid_format(f"{where} must be {'above' if positive else 'at least'} 0")
    if number != number.quantize(KOPECK):
        raise invalid_format(f"{where} has more than two decimals: {value}")
    if number >= 10**10:
        raise invalid_format(f"{where} has more than 10 digits before the point")
    return int(number * 100)


def _text(value, where: str, limit: int | None = None, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise invalid_format(f"{where} must be a string in quotes, not {value!r}")
    if limit is not None and len(value) > limit:
        raise invalid_format(f"{where} is longer than {limit} characters")
    if not empty and not value.strip():
        raise invalid_format(f"{where} must not be empty")
    return value


def _object(value, where: str, keys) -> dict:
    if not isinstance(value, dict):
        raise invalid_format(f"{where} must be an object")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise invalid_format(f"{where} has unknown keys: {', '.join(unknown)}")
    return value


def _array(value, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise invalid_format(f"{where} must be an array of at least one element")
    return value


def fits_cp866(text: str) -> bool:
    """Tell whether every character has a place in code page CP866 (Appendix 1)."""
    try:
        text.encode("cp866")
    except UnicodeEncodeError:
        return False
    return True


def _check_customer(customer, internet: bool) -> None:
    customer = _object(customer, "customer", CUSTOMER_KEYS)
    for name, value in customer.items():
        # Every customer value is a string (Appendix 9).
        _text(value, f"customer.{name}")
    limits = {"name": 243, "docdata": 64, "address": 256}
    for name, limit in limits.items():
        if len(customer.get(name, "")) > limit:
            raise invalid_format(f"customer.{name} is longer than {limit} characters")
    inn = customer.get("inn", "")
    if inn and not INN_PATTERN.fullmatch(inn):
        raise invalid_format("customer.inn must be 10-12 digits or empty")
    birthday = customer.get("birthday")
    if birthday is not None and not BIRTHDAY_PATTERN.fullmatch(birthday):
        raise invalid_format("customer.birthday must be DD.MM.YYYY")
    citizenship = customer.get("citizenship")
    if citizenship is not None and not re.fullmatch(r"\d{3}", citizenship):
        raise invalid_format("customer.citizenship must be 3 digits")
    doccode = customer.get("doccode")
    if doccode is not None and doccode not in DOCCODES:
        raise invalid_format(f"customer.doccode has no value {doccode}")
    email, phone = customer.get("email", ""), customer.get("phone", "")
    if email and not EMAIL_PATTERN.fullmatch(email):
        raise invalid_format(f"customer.email is not an e-mail address: {email!r}")
    if phone and not PHONE_PATTERN.fullmatch(re.sub(r"[\s()-]", "", phone)):
        raise invalid_format(f"customer.phone is not a phone number: {phone!r}")
    # The sandbox wants a contact on every receipt (docs/sandbox.md); the
    # specification demands it with internet 1 (Appendix 1 В).
    if not (email or phone):
        reason = " with internet 1" if internet else ""
        raise invalid_format(f"customer.email or customer.phone is required{reason}")


def _check_cashier(cashier) -> None:
    cashier = _object(cashier, "cashier", CASHIER_KEYS)
    _text(cashier.get("name", ""), "cashier.name", 240)
    inn = _text(cashier.get("inn", ""), "cashier.inn")
    if inn and not CASHIER_INN_PATTERN.fullmatch(inn):
        raise invalid_format("cashier.inn must be 12 digits or empty")


def _check_industry(props, where: str) -> None:
    for index, prop in enumerate(_array(props, where)):
        prop = _object(prop, f"{where}[{index}]", INDUSTRY_KEYS)
        for name, value in prop.items():
            _text(value, f"{where}[{index}].{name}")


def _check_product(product, where: str, kt_limit: int) -> None:
    product = _object(product, where, PRODUCT_KEYS)
    if "kt" in product:
        kt = _text(product["kt"], f"{where}.kt")
        hex_code = HEX_CODE_PATTERN.fullmatch(kt)
        if len(kt) > (kt_limit * 2 + 2 if hex_code else kt_limit):
            raise invalid_format(f"{where}.kt is too long")
    if "exc" in product:
        kopecks(product["exc"], f"{where}.exc")
    if "coc" in product:
        _text(product["coc"], f"{where}.coc", 3)
    if "ncd" in product:
        _text(product["ncd"], f"{where}.ncd", 32)


def _check_agent(agent, where: str) -> None:
    agent = _object(agent, where, AGENT_TEXT_KEYS | {"agentattr"})
    if "agentattr" not in agent:
        raise invalid_format(f"{where}.agentattr is required")
    _integer(agent["agentattr"], f"{where}.agentattr", AGENTATTRS)
    for name in AGENT_TEXT_KEYS & set(agent):
        _text(agent[name], f"{where}.{name}")
    phone = agent.get("supplierphone")
    if phone and not SUPPLIER_PHONE_PATTERN.fullmatch(phone):
        raise invalid_format(f"{where}.supplierphone must be +7XXXXXXXXXX")


def _check_line(line, index: int, kt_limit: int) -> int:
    """Check one line of `lines`; return its sum in kopecks."""
    where = f"lines[{index}]"
    line = _object(line, where, LINE_KEYS)
    missing = [name for name in LINE_REQUIRED if name not in line]
    if missing:
        raise invalid_format(f"{where} lacks {', '.join(missing)}")
    name = _text(line["name"], f"{where}.name", MAX_LINE_NAME, empty=False)
    if not fits_cp866(name):
        bad = "".join(sorted({c for c in name if not fits_cp866(c)}))
        raise invalid_format(f"{where}.name has characters outside CP866: {bad!r}")
    price = kopecks(line["price"], f"{where}.price", positive=True)
    qty = _number(line["qty"], f"{where}.qty")
    if qty <= 0 or qty != qty.quantize(Decimal("0.001")):
        raise invalid_format(f"{where}.qty must be above 0 with at most 3 decimals")
    total = kopecks(line["sum"], f"{where}.sum")
    # A cash register takes price × qty to the kopeck (docs/sandbox.md).
    expected = (Decimal(price) * qty).quantize(Decimal(1), rounding="ROUND_HALF_UP")
    if abs(expected - total) > 1:
        raise invalid_format(
            f"{where}.sum {total / 100:.2f} is not price × qty {expected / 100:.2f}"
        )
    _integer(line["vat"], f"{where}.vat", VATS)
    _integer(line["payattr"], f"{where}.payattr", PAYATTRS)
    _integer(line["lineattr"], f"{where}.lineattr", LINEATTRS)
    if "unit" in line:
        _integer(line["unit"], f"{where}.unit", UNITS)
    if "goodstatus" in line:
        _integer(line["goodstatus"], f"{where}.goodstatus", GOODSTATUSES)
    if "qtypart" in line:
        part = _object(
            line["qtypart"], f"{where}.qtypart", {"numerator", "denominator"}
        )
        numerator = _integer(part.get("numerator"), f"{where}.qtypart.numerator")
        denominator = _integer(part.get("denominator"), f"{where}.qtypart.denominator")
        if not 0 < numerator < denominator:
            raise invalid_format(f"{where}.qtypart must be a proper fraction")
    if "product" in line:
        _check_product(line["product"], f"{where}.product", kt_limit)
    if "agent" in line:
        _check_agent(line["agent"], f"{where}.agent")
    if "industryProps" in line:
        _check_industry(line["industryProps"], f"{where}.industryProps")
    return total


def _check_payment(payment, index: int) -> tuple[int, int]:
    """Check one element of `payments`; return (kind, amount in kopecks)."""
    where = f"payments[{index}]"
    payment = _object(payment, where, PAYMENT_KEYS)
    for name in ("kind", "type", "amount"):
        if name not in payment:
            raise invalid_format(f"{where}.{name} is required")
    kind = _integer(payment["kind"], f"{where}.kind", {1, 2, 3, DPS_KIND})
    types = DPS_TYPES if kind == DPS_KIND else {0}
    _integer(payment["type"], f"{where}.type", types)
    if "id" in payment:
        _text(payment["id"], f"{where}.id")
    return kind, kopecks(payment["amount"], f"{where}.amount")


def check(receipt: dict, amount: int) -> None:
    """Check a receipt against Appendix 1 and an operation of `amount` kopecks.

    Raises error 10 for its format (total against its lines and the amount among
    it, Appendix 9), then error 12 for its payments (chapter 2, step 3.1.2).
    """
    try:
        _check(receipt, amount)
    except InvalidOperation:
        # A number beyond Decimal's precision.
        raise invalid_format("a number is out of range") from None


def _check(receipt: dict, amount: int) -> None:
    receipt = _object(receipt, "the receipt", TOP_KEYS)
    for name in ("taxmode", "lines", "payments", "total"):
        if name not in receipt:
            raise invalid_format(f"{name} is required")
    internet = False
    if "internet" in receipt:
        internet = _integer(receipt["internet"], "internet", {0, 1}) == 1
    if "timezone" in receipt:
        _integer(receipt["timezone"], "timezone", range(1, 12))
    _integer(receipt["taxmode"], "taxmode", TAXMODES)
    _check_customer(receipt.get("customer", {}), internet)
    if "cashier" in receipt:
        _check_cashier(receipt["cashier"])
    params = _object(receipt.get("params", {}), "params", {"place"})
    if "place" in params:
        _text(params["place"], "params.place", 256)
    if internet and not params.get("place"):
        raise invalid_format("params.place is required with internet 1")
    if "optional" in receipt and not isinstance(receipt["optional"], dict):
        raise invalid_format("optional must be an object")
    if "senderemail" in receipt:
        _text(receipt["senderemail"], "senderemail", 64)
    if "additionalRequisite" in receipt:
        _text(receipt["additionalRequisite"], "additionalRequisite", 16)
    if "industryProps" in receipt:
        _check_industry(receipt["industryProps"], "industryProps")
    kt_limit = 256 if "internet" in receipt else 32
    lines = _array(receipt["lines"], "lines")
    lines_sum = sum(_check_line(line, i, kt_limit) for i, line in enumerate(lines))
    payments = [
        _check_payment(payment, i)
        for i, payment in enumerate(_array(receipt["payments"], "payments"))
    ]
    total = kopecks(receipt["total"], "total")
    if total != lines_sum:
        raise invalid_format(
            f"total {total / 100:.2f} is not the sum of the lines {lines_sum / 100:.2f}"
        )
    dps = any(kind == DPS_KIND for kind, _ in payments)
    if not dps and total != amount:
        raise invalid_format(
            f"total {total / 100:.2f} is not the operation's amount {amount / 100:.2f}"
        )
    paid = sum(value for _, value in payments)
    if paid != lines_sum:
        raise invalid_payments(
            f"payments sum {paid / 100:.2f}, lines sum {lines_sum / 100:.2f}"
        )
    electronic = sum(value for kind, value in payments if kind in ELECTRONIC_KINDS)
    if electronic != amount:
        raise invalid_payments(
            f"card payments sum {electronic / 100:.2f}, the amount {amount / 100:.2f}"
        )


def has_agent(receipt: dict) -> bool:
    """Tell whether a line of a checked receipt carries an agent block."""
    return any("agent" in line for line in receipt["lines"])


def has_dps(receipt: dict) -> bool:
    """Tell whether a checked receipt is paid in part by a merchant's means (ДПС)."""
    return any(payment["kind"] == DPS_KIND for payment in receipt["payments"])


def parse_json(text: str) -> dict:
    """Read a receipt kept as JSON text by the sandbox (decimals kept exact)."""
    return json.loads(text, parse_float=Decimal)


def dump_json(receipt) -> str:
    """Write a receipt as the sandbox keeps it: JSON text, UTF-8 as is."""
    return json.dumps(receipt, ensure_ascii=False, default=_json_decimal)
