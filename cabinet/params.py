"""The parameters of a module configuration: names, defaults, validation, secrecy."""

import re
from decimal import Decimal
from urllib.parse import urlparse

from .money import AmountError, format_wire, to_kopecks
from .uniteller.client import DEFAULT_GATEWAY_URL

CALLBACK_FIELD_NAMES = {
    "BillNumber", "ApprovalCode", "Total", "Balance", "Customer_IDP", "Card_IDP",
    "CardNumber", "PaymentType", "ECI", "AcquirerID", "IssuerName", "EMoneyType",
    "Token_IDP",
}
# Parameters never shown on a page, in a log or in `config show`.
SECRET_PARAMS = {"password"}


class ParamError(ValueError):
    """A configuration parameter with an unknown name or a bad value."""


def _text(max_length):
    def parse(value):
        value = value.strip()
        if len(value) > max_length:
            raise ParamError(f"longer than {max_length} characters")
        return value
    return parse


def _shop_id(value):
    value = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
        raise ParamError("letters, digits and '-' only, e.g. 00009876")
    return value


def _url(value):
    value = value.strip().rstrip("/")
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ParamError("an http(s) URL, e.g. https://wpay.uniteller.ru")
    return value


def _seconds(value):
    value = value.strip()
    if not value.isdigit() or not 0 < int(value) <= 86400 * 30:
        raise ParamError("a whole number of seconds, greater than 0")
    return value


def _amount(value):
    try:
        kopecks = to_kopecks(Decimal(value.strip().replace(",", ".")))
    except (AmountError, ArithmeticError) as exc:
        raise ParamError("an amount in roubles, e.g. 100.00") from exc
    if kopecks <= 0:
        raise ParamError("must be greater than 0")
    return format_wire(kopecks)


def _callback_fields(value):
    names = value.split()
    unknown = [n for n in names if n not in CALLBACK_FIELD_NAMES]
    if unknown:
        raise ParamError(
            f"unknown field {unknown[0]!r}; known: "
            + ", ".join(sorted(CALLBACK_FIELD_NAMES))
        )
    return " ".join(names)


def _flag(value):
    value = value.strip().lower()
    if value in ("1", "yes", "true", "on"):
        return "yes"
    if value in ("0", "no", "false", "off", ""):
        return "no"
    raise ParamError("yes or no")


def _days(value):
    value = value.strip()
    if not value.isdigit() or not 0 <= int(value) <= 30:
        raise ParamError("a whole number of days from 0 to 30")
    return value


def _optional_amount(value):
    return "" if not value.strip() else _amount(value)


# name: (parser, default, help)
PARAMS = {
    "shop_id": (_shop_id, "", "Uniteller Point ID (Shop_IDP)"),
    "login": (_text(64), "", "login for server-to-server APIs"),
    "password": (_text(512), "", "the shared secret from Uniteller's cabinet"),
    "gateway_url": (_url, DEFAULT_GATEWAY_URL, "Uniteller's host, or the sandbox"),
    "callback_fields": (
        _callback_fields, "BillNumber ApprovalCode Total",
        "extra callback fields, in signing order",
    ),
    "lifetime": (_seconds, "300", "seconds the payment form lives"),
    "min_amount": (_amount, "1.00", "smallest payment, roubles"),
    "max_amount": (_amount, "100000.00", "largest payment, roubles"),
    "autopay_weekly": (_flag, "no", "subscribers may set up weekly autopay"),
    "autopay_monthly": (_flag, "no", "subscribers may set up monthly autopay"),
    "autopay_automatic": (_flag, "no", "subscribers may choose the automatic mode"),
    "autopay_retry_days": (_days, "3", "days a softly declined charge is retried"),
    "auto_threshold": (_optional_amount, "", "automatic mode: top up when the balance "
                       "is below this (empty: no built-in policy)"),
    "auto_target": (_optional_amount, "", "automatic mode: top up to this balance"),
}


def parse_assignments(assignments):
    """Turn ["key=value", …] into a validated dict; raise ParamError with the reason."""
    result = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ParamError(f"{item!r}: expected KEY=VALUE")
        result[key] = value
    return validate(result)


def validate(params):
    """Validate parameters by name; return them normalised."""
    clean = {}
    for key, value in params.items():
        if key not in PARAMS:
            raise ParamError(
                f"unknown parameter {key!r}; known: {', '.join(PARAMS)}"
            )
        parser = PARAMS[key][0]
        try:
            clean[key] = parser(str(value))
        except ParamError as exc:
            raise ParamError(f"{key}: {exc}") from None
    if clean.get("auto_threshold") and clean.get("auto_target"):
        if Decimal(clean["auto_threshold"]) >= Decimal(clean["auto_target"]):
            raise ParamError("auto_target must be above auto_threshold")
    if "min_amount" in clean and "max_amount" in clean:
        if Decimal(clean["min_amount"]) > Decimal(clean["max_amount"]):
            raise ParamError("min_amount is greater than max_amount")
    return clean


def effective(params):
    """Return the parameters with defaults filled in."""
    merged = {key: spec[1] for key, spec in PARAMS.items()}
    merged.update(params or {})
    return merged


def redacted(params):
    """Return the parameters with secrets masked, for display."""
    return {
        key: ("***" if key in SECRET_PARAMS and value else value)
        for key, value in params.items()
    }


def missing_for_payments(params):
    """Name the parameters a configuration lacks to take payments."""
    merged = effective(params)
    return [key for key in ("shop_id", "password") if not merged.get(key)]
