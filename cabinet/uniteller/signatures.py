"""Uniteller's signature formulas, one pure function each (protocol §3-§10)."""

import hashlib
import hmac


def _md5(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pay_signature(
    password,
    shop_idp,
    order_idp,
    subtotal_p,
    mean_type="",
    emoney_type="",
    lifetime="",
    customer_idp="",
    card_idp="",
    idata="",
    pt_code="",
    order_lifetime=None,
    phone_verified=None,
    merchant_order_id=None,
    payment_type_limits=None,
):
    """Sign a /pay/ request; the last four slots exist only if their field is sent."""
    parts = [
        shop_idp,
        order_idp,
        subtotal_p,
        mean_type,
        emoney_type,
        lifetime,
        customer_idp,
        card_idp,
        idata,
        pt_code,
    ]
    # OrderLifetime, PhoneVerified, MerchantOrderId and PaymentTypeLimits add a
    # slot only if sent, in that order: the SBP spec (v04 Table 1) puts
    # PaymentTypeLimits after PhoneVerified, v1.43 Table 2 lists it after
    # MerchantOrderId.
    optional = (order_lifetime, phone_verified, merchant_order_id, payment_type_limits)
    parts += [p for p in optional if p is not None]
    parts.append(password)
    return _md5("&".join(_md5(str(p)) for p in parts)).upper()


def callback_signature(password, order_id, status, extra_values=()):
    """Sign a callback: md5 of Order_ID, Status, the CallbackFields values, password."""
    return _md5(order_id + status + "".join(extra_values) + password).upper()


def recurrent_signature(
    password, shop_idp, order_idp, subtotal_p, parent_order_idp, parent_shop_idp=None
):
    """Sign a /recurrent/ request (Parent_Shop_IDP has a slot only when sent)."""
    parts = [shop_idp]
    if parent_shop_idp is not None:
        parts.append(parent_shop_idp)
    parts += [order_idp, subtotal_p, parent_order_idp, password]
    return _md5("&".join(_md5(p) for p in parts)).upper()


def recurrent_answer_signature(password, order_number, total):
    """Sign (to verify) the answer line of /recurrent/."""
    return _md5(order_number + total + password).upper()


def receipt_signature(password, shop_idp, order_idp, subtotal_p, receipt_base64):
    """Sign a fiscal receipt (54-FZ) sent with the payment page."""
    parts = [shop_idp, order_idp, subtotal_p, receipt_base64, password]
    return _sha256("&".join(_sha256(p) for p in parts)).upper()


def fiscal_callback_signature(password, order_id, status, receipt_base64):
    """Sign (to verify) the receipts of a fiscal callback (fiscal 02.1.18 §3.15)."""
    return _sha256(order_id + status + receipt_base64 + password).upper()


def cancel_signature(password, order_id, upid, subtotal=None, receipt_base64=None):
    """Sign a /v2/cancel request (fiscal §3.14): a field not sent has no slot."""
    parts = [order_id, upid, subtotal, receipt_base64, password]
    return _sha256("&".join(_sha256(p) for p in parts if p is not None)).upper()


def signatures_match(expected, given):
    """Compare signatures in constant time; upper-case hex only, as Uniteller signs."""
    if not given or not isinstance(given, str):
        return False
    return hmac.compare_digest(
        expected.encode("ascii"), given.encode("ascii", "replace")
    )
