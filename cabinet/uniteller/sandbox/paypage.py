"""Validate a /pay/ request and a submitted card form like Uniteller's page does.

The refusals and their texts are v1.43 Table 36 (§8.4) unless docs/sandbox.md
names them as the sandbox's own.
"""

import re
import secrets

from . import bank, receipts
from .engine import Card
from .signatures import pay_signature, receipt_signature, same
from .wire import (
    AMOUNT_PATTERN,
    CARD,
    SBP,
    parse_amount,
    parse_payment_types,
    valid_callback_fields,
)

MANDATORY = ("Order_IDP", "Subtotal_P", "Signature")
# The longest value of each parameter, v1.43 Tables 1 and 2 (the return URLs,
# CallbackFields and Language have refusals of their own).
MAX_LENGTHS = {
    "Shop_IDP": 64,
    "Order_IDP": 127,
    "Email": 64,
    "Customer_IDP": 64,
    "Card_IDP": 128,
    "MerchantOrderId": 256,
    "PT_Code": 10,
    "Token_IDP": 11,
    "BackUrl": 255,
    "DeepLink": 255,
    "PaymentTypeLimits": 1024,
    "EWallet": 64,
    "DestPhoneNum": 12,
    "Comment": 1024,
    "FirstName": 64,
    "LastName": 64,
    "MiddleName": 64,
    "Phone": 64,
    "PhoneVerified": 64,
    "Address": 128,
    "Country": 64,
    "State": 3,
    "City": 64,
    "Zip": 64,
}
# Parameters with a closed set of values: name -> the values (Tables 1-3, 36).
VALUE_SETS = {
    "MeanType": ("0", "1", "2", "3", "4", "5"),
    "EMoneyType": ("0", "1", "13", "18", "19", "29"),
    "Language": ("ru", "en"),
    "Preauth": ("1",),
    "IsRecurrentStart": ("1", "2", "3"),
}
CURRENCIES = ("RUB", "AZN", "EUR", "KGS", "KZT", "UAH", "USD")
# A Shop_IDP: 1-64 letters and digits, or two groups of them joined by "-".
SHOP_ID_PATTERN = re.compile(r"[A-Za-z0-9]{1,64}|[A-Za-z0-9]{1,15}-[A-Za-z0-9]{1,11}")
# Reserved by Uniteller for its own use (v1.43 §4.4.3.2).
RESERVED_CUSTOMER_ID = "Nobody"
RETURN_URLS = ("URL_RETURN_OK", "URL_RETURN_NO", "URL_RETURN")
POSITIVE_INTEGER = re.compile(r"[1-9]\d*")
AMOUNT_SHAPE = re.compile(r"\d+(\.\d*)?")


# /v2/pay's own mandatory fields, refused in Appendix 9's words (with quotes).
FISCAL_MANDATORY = ("Receipt", "ReceiptSignature")
# The page's texts of the receipt checks (fiscal 02.1.18 §2.1.2, 3.1.x; 19 as
# Appendix 9 spells it); the others are Appendix 8's.
PAGE_TEXTS = {19: "Payment type not allowed"}


class MerchantError(Exception):
    """A /pay/ request Uniteller refuses; the reason goes into the page's comment.

    `detail` is the sandbox's own explanation, shown in a comment of its own.
    """

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.detail = detail


def validate_pay_request(
    fields: dict, find_shop, mode: str = "demo", fiscal: bool = False
) -> dict:
    """Check a /pay/ request (fiscal: a /v2/pay one); return its shop or raise."""
    _check_characters(fields)
    if not fields.get("Shop_IDP"):
        raise MerchantError("Please specify shop id")
    for name in MANDATORY:
        if not fields.get(name):
            raise MerchantError(
                f"Mandatory parameter {name} is not present in the request"
            )
    for name in FISCAL_MANDATORY if fiscal else ():
        if not fields.get(name):
            raise MerchantError(
                f"Mandatory parameter '{name}' is not present in the request"
            )
    for name, limit in MAX_LENGTHS.items():
        if len(fields.get(name, "")) > limit:
            raise MerchantError(f"{fields[name]} is too long")
    _check_values(fields)
    _check_subtotal(fields["Subtotal_P"])
    types = payment_types(fields)
    if SBP in types and not fiscal:
        # SBP only through the fiscal payment form v2.0 (v1.43 §4.1.9); the
        # text is fiscal Appendix 9's code 19.
        raise MerchantError(
            PAGE_TEXTS[19], "SBP is taken only on /v2/pay (v1.43 §4.1.9)"
        )
    if CARD not in types and SBP not in types:
        raise MerchantError(PAGE_TEXTS[19], "the sandbox takes cards and SBP only")
    for name in ("Lifetime", "OrderLifetime"):
        if fields.get(name) and not POSITIVE_INTEGER.fullmatch(fields[name]):
            raise MerchantError(f"{name} must be a valid positive integer number")
    shop = find_shop(fields["Shop_IDP"])
    if shop is None:
        raise MerchantError("Wrong Shop_IDP")
    # Uniteller compares with its upper-case hex: a lower-case one is not valid.
    expected = pay_signature(fields, shop["password"])
    if not secrets.compare_digest(expected, fields["Signature"]):
        raise MerchantError("Signature is not valid")
    _check_return_urls(fields)
    if not valid_callback_fields(fields.get("CallbackFields", "")):
        raise MerchantError("CallbackFields is not valid")
    if mode == "spec" and not bank.spec_amount_allowed(
        parse_amount(fields["Subtotal_P"])
    ):
        # The sandbox's own text: the spec gives none for the test amounts.
        raise MerchantError(
            "Subtotal_P must be from 10.00 to 100.00 in the test environment"
        )
    return shop


def payment_types(fields: dict) -> tuple:
    """Return the payment types a request allows; MerchantError for a bad value."""
    types = parse_payment_types(fields.get("PaymentTypeLimits", ""))
    if types is None:
        raise MerchantError(
            f"Bad PaymentTypeLimits parameter value {fields['PaymentTypeLimits']}"
        )
    return types


def _check_characters(fields: dict) -> None:
    for name, value in fields.items():
        if "\r" in value or "\n" in value:
            raise MerchantError(f"Parameter {name} contains invalid characters \\r \\n")


def _check_values(fields: dict) -> None:
    """Refuse values outside the spec's sets; an empty value counts as not sent."""
    shop_id = fields["Shop_IDP"]
    if not SHOP_ID_PATTERN.fullmatch(shop_id):
        raise MerchantError(f"Bad Shop_IDP parameter value {shop_id}")
    if not fields["Order_IDP"].strip():
        raise MerchantError(f"Bad Order_IDP parameter value {fields['Order_IDP']}")
    customer = fields.get("Customer_IDP", "")
    if customer and (not customer.strip() or customer == RESERVED_CUSTOMER_ID):
        raise MerchantError(f"Bad Customer_IDP parameter value {customer}")
    for name, allowed in VALUE_SETS.items():
        value = fields.get(name, "")
        if value and value not in allowed:
            raise MerchantError(f"Bad {name} parameter value {value}")
    if fields.get("Currency") and fields["Currency"] not in CURRENCIES:
        raise MerchantError("Incorrect currency")
    bill_lifetime = fields.get("BillLifetime", "")
    if bill_lifetime and not (
        POSITIVE_INTEGER.fullmatch(bill_lifetime) and int(bill_lifetime) <= 1080
    ):
        raise MerchantError(f"Bad BillLifetime parameter value {bill_lifetime}")


def _check_subtotal(text: str) -> None:
    if not AMOUNT_SHAPE.fullmatch(text) or float(text) <= 0:
        raise MerchantError("Subtotal_P must be a valid positive floating point number")
    if not AMOUNT_PATTERN.fullmatch(text):
        raise MerchantError(
            "Subtotal_P must have one or two digits after the decimal point"
        )


def _check_return_urls(fields: dict) -> None:
    if not (fields.get("URL_RETURN_OK") or fields.get("URL_RETURN")):
        raise MerchantError(
            "URL_RETURN_OK or URL_RETURN must be present in the request"
        )
    for name in RETURN_URLS:
        url = fields.get(name)
        if url is not None and not _valid_return_url(url):
            raise MerchantError(f"{name} is not valid")


def _valid_return_url(url: str) -> bool:
    return (
        url.isascii()
        and len(url) <= 255
        and url.startswith(("http://", "https://"))
        and not any(char.isspace() for char in url)
    )


def read_card(form, mode: str = "demo") -> tuple[Card | None, str]:
    """Read the card form; return (Card, '') or (None, what the payer must fix)."""
    number = re.sub(r"[\s-]", "", form.get("card_number", ""))
    if not re.fullmatch(r"\d{12,19}", number):
        return None, "Проверьте номер карты: от 12 до 19 цифр"
    month, year = form.get("exp_month", "").strip(), form.get("exp_year", "").strip()
    if not (re.fullmatch(r"\d{1,2}", month) and 1 <= int(month) <= 12):
        return None, "Укажите месяц окончания действия карты (01–12)"
    if not re.fullmatch(r"\d{2}|\d{4}", year):
        return None, "Укажите год окончания действия карты (ГГ или ГГГГ)"
    cvc = form.get("cvc", "").strip()
    if not re.fullmatch(r"\d{3,4}", cvc):
        return None, "Укажите CVC2/CVV2: 3 или 4 цифры"
    holder = form.get("holder", "").strip()[:64]
    # Every field of Uniteller's card form is required (v1.43 §3.3.3).
    if mode == "spec" and not holder:
        return None, "Укажите имя владельца карты, как на карте"
    full_year = int(year) + (2000 if len(year) == 2 else 0)
    return Card(number, int(month), full_year, holder, cvc), ""


def validate_fiscal_pay_request(
    fields: dict, find_shop, earlier_receipts, mode: str = "demo"
) -> dict:
    """Check a /v2/pay request (fiscal 02.1.18 §3.1, §2.1.2); return its shop.

    The /pay/ checks first, then what only a fiscal payment asks, then the
    receipt in chapter 2's order (3.1.1-3.1.6), then that an order id tried
    before comes with the same receipt (Appendix 9). `earlier_receipts` gives
    the receipts (JSON texts, '' for none) of the order id's earlier attempts.
    """
    shop = validate_pay_request(fields, find_shop, mode, fiscal=True)
    if fields.get("Preauth"):
        # Preauthorizations have their own addresses (/v2/preauth, §3.7).
        raise MerchantError("Wrong payment type")
    if (fields.get("Currency") or "RUB") != "RUB":
        # Fiscal operations are in roubles only (§2.1.1).
        raise MerchantError("Incorrect currency")
    expected = receipt_signature(
        fields["Shop_IDP"],
        fields["Order_IDP"],
        fields["Subtotal_P"],
        fields["Receipt"],
        shop["password"],
    )
    try:
        receipt, _ = receipts.check_request(
            fields["Receipt"],
            parse_amount(fields["Subtotal_P"]),
            fiscal_enabled=bool(shop["fiscal"]),
            signature_ok=same(expected, fields["ReceiptSignature"]),
        )
    except receipts.ReceiptError as error:
        raise MerchantError(
            PAGE_TEXTS.get(error.code, error.text), error.detail
        ) from None
    for text in earlier_receipts(fields["Shop_IDP"], fields["Order_IDP"]):
        if not text or receipts.parse_json(text) != receipt:
            raise MerchantError(
                "Receipt does not match with order",
                "this Order_IDP was tried before with another receipt",
            )
    return shop
