"""Emulate Uniteller's cloud cash register: fiscalized receipts (02.1.18, App. 2).

A fiscalized receipt is the receipt as the shop sent it with a `fiscal` block
added; the register's numbers below are the sandbox's own (docs/sandbox.md).
"""

import secrets
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import urlencode

from . import receipts

# fiscal.type (Appendix 2).
SALE = 0
REFUND = 1
SALE_CORRECTION = 2
REFUND_CORRECTION = 3
TYPE_NAMES = {
    SALE: "Приход",
    REFUND: "Возврат прихода",
    SALE_CORRECTION: "Коррекция прихода",
    REFUND_CORRECTION: "Коррекция возврата прихода",
}

# The one register of the sandbox: serial, registration and fiscal storage
# numbers, 16 digits like real ones, and the company and OFD it names.
ECR = {"sn": "0000000000054321", "rn": "0000000001012345", "fs": "9999078902004321"}
COMPANY = {"name": "ООО «Магазин песочницы»", "inn": "7700000000"}
FDO = {"name": "ОФД песочницы Uniteller", "inn": "7700000001"}
# Shift 1 is this day; a shift lasts a day (54-FZ: at most 24 hours).
FIRST_SHIFT = date(2026, 1, 1)
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def new_fiscal_id() -> str:
    """Return a fresh fiscal.id: 20 random digits (unique across sandbox resets)."""
    return str(secrets.randbelow(9 * 10**19) + 10**19)


def shift_number(day: date) -> int:
    """Return the number of the day's shift."""
    return (day - FIRST_SHIFT).days + 1


def check_link(
    base_url: str, moment: datetime, total: int, number: int, attr: int, kind: int
) -> str:
    """Return the receipt's check link, shaped like the tax service's (t, s, fn…)."""
    query = urlencode(
        {
            "t": moment.strftime("%Y%m%dT%H%M"),
            "s": f"{total // 100}.{total % 100:02d}",
            "fn": ECR["fs"],
            "i": number,
            "fp": attr,
            # The tax service's operation: 1 income, 2 its refund.
            "n": 2 if kind in (REFUND, REFUND_CORRECTION) else 1,
        }
    )
    return f"{base_url.rstrip('/')}/receipt?{query}"


def fiscal_block(
    receipt: dict,
    *,
    fiscal_id: str,
    kind: int,
    number: int,
    shift_index: int,
    moment: datetime,
    base_url: str,
) -> dict:
    """Return the `fiscal` block of a receipt registered now (Appendix 2)."""
    attr = secrets.randbelow(2**32 - 10**9) + 10**9
    stamp = moment.strftime(DATE_FORMAT)
    total = receipts.kopecks(receipt["total"], "total")
    block = {
        "id": fiscal_id,
        "type": kind,
        "register": {
            "fiscal_number": number,
            "shift_number": shift_number(moment.date()),
            "shift_index": shift_index,
            "fiscal_date": stamp,
            "fiscal_attr": attr,
            "fdo_date": stamp,
            "fdo_attr": secrets.token_hex(9).upper(),
            "fiscal_link": check_link(base_url, moment, total, number, attr, kind),
        },
        "ecr": dict(ECR),
        "company": dict(COMPANY),
        "fdo": {**FDO, "www": base_url.rstrip("/")},
    }
    if "optional" in receipt:
        block["optional"] = receipt["optional"]
    if "params" in receipt:
        block["params"] = receipt["params"]
    return block


def fiscalized(receipt_text: str, fiscal: dict) -> str:
    """Return the receipt's JSON text exactly as sent with `fiscal` added last."""
    body = receipt_text.strip()
    # A checked receipt is a non-empty object: insert before its closing brace.
    return body[:-1].rstrip() + ', "fiscal": ' + receipts.dump_json(fiscal) + "}"


def refund_of_balance(sale_text: str, balance: int, sale_amount: int) -> str:
    """Return the refund receipt the register makes itself from the sale's.

    The whole sale is refunded with the sale's own receipt; a remainder with one
    line of the sale's first line's attributes for that sum.
    """
    if balance == sale_amount:
        return sale_text
    sale = receipts.parse_json(sale_text)
    first = sale["lines"][0]
    money = _money(balance)
    line = {
        "name": first["name"],
        "price": money,
        "qty": 1,
        "sum": money,
        "vat": first["vat"],
        "payattr": first["payattr"],
        "lineattr": first["lineattr"],
    }
    refund = {key: sale[key] for key in ("customer", "taxmode") if key in sale}
    refund.update(
        lines=[line], payments=[{"kind": 1, "type": 0, "amount": money}], total=money
    )
    return receipts.dump_json(refund)


def correction_of(refund_text: str, refund_number: int, day: date) -> str:
    """Return the correction receipt that undoes a refund receipt (FFD 1.2 shape)."""
    correction = receipts.parse_json(refund_text)
    correction.update(
        correctionType=0,
        causeDocumentNumber=str(refund_number),
        causeDocumentDate=day.isoformat(),
        # 0: a correction of income (Appendix 1 В).
        correctionSubject=0,
    )
    return receipts.dump_json(correction)


def _money(kopecks: int) -> int | Decimal:
    whole, cents = divmod(kopecks, 100)
    return whole if cents == 0 else Decimal(f"{whole}.{cents:02d}")


def as_array(bodies) -> str:
    """Return fiscalized receipts (JSON texts) as base64 of one JSON array, or ''."""
    bodies = list(bodies)
    if not bodies:
        return ""
    return receipts.encode_text("[" + ",".join(bodies) + "]")


def parse(body: str) -> dict:
    """Read a fiscalized receipt kept as JSON text (amounts as Decimal)."""
    return receipts.parse_json(body)
