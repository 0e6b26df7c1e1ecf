"""Validate a /pay/ request and a submitted card form like Uniteller's page does."""

import re
import secrets

from .engine import Card
from .signatures import pay_signature
from .wire import AMOUNT_PATTERN, valid_callback_fields

MANDATORY = ("Shop_IDP", "Order_IDP", "Subtotal_P", "Signature")
MAX_LENGTHS = {
    "Order_IDP": 127,
    "Customer_IDP": 64,
    "PT_Code": 10,
    "PhoneVerified": 64,
    "MerchantOrderId": 256,
    "Email": 64,
    "Phone": 64,
    "FirstName": 64,
    "LastName": 64,
    "MiddleName": 64,
    "Comment": 1024,
}
RETURN_URLS = ("URL_RETURN_OK", "URL_RETURN_NO", "URL_RETURN")
POSITIVE_INTEGER = re.compile(r"[1-9]\d*")
AMOUNT_SHAPE = re.compile(r"\d+(\.\d*)?")


class MerchantError(Exception):
    """A /pay/ request Uniteller refuses; the reason goes into the page's comment."""


def validate_pay_request(fields: dict, find_shop) -> dict:
    """Check a /pay/ request; return its shop or raise MerchantError."""
    for name in MANDATORY:
        if not fields.get(name):
            raise MerchantError(
                f"Mandatory parameter {name} is not present in the request"
            )
    for name, limit in MAX_LENGTHS.items():
        if len(fields.get(name, "")) > limit:
            raise MerchantError(f"{name} is too long")
    _check_subtotal(fields["Subtotal_P"])
    for name in ("Lifetime", "OrderLifetime"):
        if fields.get(name) and not POSITIVE_INTEGER.fullmatch(fields[name]):
            raise MerchantError(f"{name} must be a valid positive integer number")
    shop = find_shop(fields["Shop_IDP"])
    if shop is None:
        raise MerchantError("Wrong Shop_IDP")
    expected = pay_signature(fields, shop["password"])
    if not secrets.compare_digest(expected, fields["Signature"].upper()):
        raise MerchantError("Signature is not valid")
    _check_return_urls(fields)
    if not valid_callback_fields(fields.get("CallbackFields", "")):
        raise MerchantError("CallbackFields is not valid")
    return shop


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


def read_card(form) -> tuple[Card | None, str]:
    """Read the card form; return (Card, '') or (None, what the payer must fix)."""
    number = re.sub(r"[\s-]", "", form.get("card_number", ""))
    if not re.fullmatch(r"\d{12,19}", number):
        return None, "Проверьте номер карты: от 12 до 19 цифр"
    month, year = form.get("exp_month", "").strip(), form.get("exp_year", "").strip()
    if not (re.fullmatch(r"\d{1,2}", month) and 1 <= int(month) <= 12):
        return None, "Укажите месяц окончания действия карты (01–12)"
    if not re.fullmatch(r"\d{2}|\d{4}", year):
        return None, "Укажите год окончания действия карты (ГГ или ГГГГ)"
    if not re.fullmatch(r"\d{3,4}", form.get("cvc", "").strip()):
        return None, "Укажите CVC2/CVV2: 3 или 4 цифры"
    full_year = int(year) + (2000 if len(year) == 2 else 0)
    holder = form.get("holder", "").strip()[:64]
    return Card(number, int(month), full_year, holder), ""
