"""Compute Uniteller signatures, written from the protocol reference on its own."""

import hashlib
import hmac
from collections.abc import Iterable, Mapping

# Slots 1-10 of the /pay/ signature: always present, empty when not sent.
PAY_SIGNED_FIELDS = (
    "Shop_IDP",
    "Order_IDP",
    "Subtotal_P",
    "MeanType",
    "EMoneyType",
    "Lifetime",
    "Customer_IDP",
    "Card_IDP",
    "IData",
    "PT_Code",
)
# Slots that exist only when the field was sent, in this order.
# PaymentTypeLimits after PhoneVerified (SBP v04 Table 1) and after
# MerchantOrderId (v1.43 Table 2: "in the order of the request's parameters").
PAY_OPTIONAL_SIGNED_FIELDS = (
    "OrderLifetime",
    "PhoneVerified",
    "MerchantOrderId",
    "PaymentTypeLimits",
)


def md5_hex(text: str) -> str:
    """Return the lowercase hex MD5 digest of a UTF-8 string."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _joined_digest(values: Iterable[str]) -> str:
    """Return UPPER(md5(md5(v1) & md5(v2) & ...))."""
    return md5_hex("&".join(md5_hex(value) for value in values)).upper()


def pay_signature(fields: Mapping[str, str], password: str) -> str:
    """Sign a /pay/ request given the fields as sent."""
    values = [fields.get(name, "") for name in PAY_SIGNED_FIELDS]
    values += [fields[name] for name in PAY_OPTIONAL_SIGNED_FIELDS if name in fields]
    return _joined_digest([*values, password])


def recurrent_signature(
    shop_id: str,
    order_id: str,
    subtotal: str,
    parent_order_id: str,
    password: str,
    parent_shop_id: str | None = None,
    recurrent_type: str | None = None,
) -> str:
    """Sign a /recurrent/ request; Parent_Shop_IDP and RecurrentType only when sent.

    v1.43 Table 13 says a sent RecurrentType takes part in the signature but not
    where: the sandbox puts it after Parent_Order_IDP, before the password
    (docs/sandbox.md).
    """
    values = [shop_id]
    if parent_shop_id is not None:
        values.append(parent_shop_id)
    values += [order_id, subtotal, parent_order_id]
    if recurrent_type is not None:
        values.append(recurrent_type)
    return _joined_digest([*values, password])


def recurrent_answer_signature(order_number: str, total: str, password: str) -> str:
    """Sign a /recurrent/ answer line: UPPER(md5(OrderNumber + Total + password))."""
    return md5_hex(order_number + total + password).upper()


def callback_signature(
    order_id: str, status: str, extra_values: Iterable[str], password: str
) -> str:
    """Sign a callback: UPPER(md5(Order_ID + Status + F1..Fn + password))."""
    return md5_hex(order_id + status + "".join(extra_values) + password).upper()


def sha256_hex(text: str) -> str:
    """Return the lowercase hex SHA-256 digest of a UTF-8 string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _joined_sha256(values: Iterable[str]) -> str:
    """Return UPPER(sha256(sha256(v1) & sha256(v2) & ...))."""
    return sha256_hex("&".join(sha256_hex(value) for value in values)).upper()


def receipt_signature(
    shop_id: str, order_id: str, subtotal: str, receipt: str, password: str
) -> str:
    """Sign the Receipt of /v2/pay and /v2/recurrent (fiscal 02.1.18 §3.1, §3.6).

    UPPER(sha256(sha256(Shop_IDP) & sha256(Order_IDP) & sha256(Subtotal_P) &
    sha256(Receipt) & sha256(password))), Receipt being the base64 text as sent.
    """
    return _joined_sha256([shop_id, order_id, subtotal, receipt, password])


# The /v2/cancel fields in their signature order (fiscal 02.1.18 §3.14).
CANCEL_SIGNED_FIELDS = ("OrderID", "UPID", "Subtotal", "Receipt")


def cancel_signature(fields: Mapping[str, str], password: str) -> str:
    """Sign a /v2/cancel request: a field not sent drops out with its `&` (§3.14)."""
    values = [fields[name] for name in CANCEL_SIGNED_FIELDS if name in fields]
    return _joined_sha256([*values, password])


# The callback fields a fiscal notification signs first, in this order (§3.15).
FISCAL_FIXED_FIELDS = ("ApprovalCode", "BillNumber", "Total")


def fiscal_callback_signature(
    order_id: str, status: str, fields: Mapping[str, str], password: str
) -> str:
    """Sign a fiscal notification: ApprovalCode, BillNumber, Total first (§3.15).

    UPPER(md5(Order_ID + Status + ApprovalCode + BillNumber + Total + F1..Fn +
    password)): the three when sent, in this fixed order, then the other fields in
    the order given.
    """
    values = [fields[name] for name in FISCAL_FIXED_FIELDS if name in fields]
    values += [
        value for name, value in fields.items() if name not in FISCAL_FIXED_FIELDS
    ]
    return callback_signature(order_id, status, values, password)


def fiscal_receipt_signature(
    order_id: str, status: str, receipt: str, password: str
) -> str:
    """Sign a fiscal notification's Receipt (§3.15).

    UPPER(sha256(Order_ID + Status + Receipt + password)): plain concatenation,
    no inner digests.
    """
    return sha256_hex(order_id + status + receipt + password).upper()


def same(expected: str, sent: str) -> bool:
    """Compare a signature as sent in constant time (any characters, as bytes)."""
    return hmac.compare_digest(expected.encode("utf-8"), sent.encode("utf-8"))
