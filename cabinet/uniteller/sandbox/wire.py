"""Format what goes over the wire: amounts, dates, result fields, CSV and XML."""

import re
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

from . import bank

AMOUNT_PATTERN = re.compile(r"\d+(\.\d{1,2})?")
CRLF = "\r\n"
MAX_PERIOD = timedelta(days=7)

# Internal lower-case status -> the capitalised name of /results/.
STATUS_NAMES = {
    "waiting": "Waiting",
    "authorized": "Authorized",
    "paid": "Paid",
    "canceled": "Canceled",
    "not authorized": "Not Authorized",
    "refund": "Refund",
}


def format_amount(kopecks: int) -> str:
    """Render kopecks as "%d.%02d"."""
    whole, cents = divmod(kopecks, 100)
    return f"{whole}.{cents:02d}"


def parse_amount(text: str) -> int | None:
    """Parse a positive amount with at most two decimals into kopecks, else None."""
    if not AMOUNT_PATTERN.fullmatch(text or ""):
        return None
    whole, _, fraction = text.partition(".")
    kopecks = int(whole) * 100 + int(fraction.ljust(2, "0") or 0)
    return kopecks if kopecks > 0 else None


def format_time(epoch: float | None, tz) -> str:
    """Render a timestamp as dd.mm.yyyy hh:mm:ss in the sandbox timezone."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, tz).strftime("%d.%m.%Y %H:%M:%S")


def _message(order: dict) -> tuple[str, str]:
    return bank.RESPONSES.get(order["response_code"], ("", ""))


def _failed(order: dict) -> bool:
    return order["status"] == "not authorized"


# Field name -> value getter(order, tz); used by /results/, answers and callbacks.
FIELDS = {
    "OrderNumber": lambda o, tz: o["order_id"],
    "Response_Code": lambda o, tz: o["response_code"],
    "Recommendation": lambda o, tz: _message(o)[1],
    "Message": lambda o, tz: _message(o)[0],
    "Comment": lambda o, tz: o["comment"],
    "Date": lambda o, tz: format_time(o["created_at"], tz),
    "Total": lambda o, tz: format_amount(o["amount"]),
    "Balance": lambda o, tz: format_amount(o["balance"]),
    "Currency": lambda o, tz: o["currency"],
    "CardType": lambda o, tz: bank.card_type(o["card_masked"]),
    "CardNumber": lambda o, tz: o["card_masked"],
    "LastName": lambda o, tz: o["last_name"],
    "FirstName": lambda o, tz: o["first_name"],
    "MiddleName": lambda o, tz: o["middle_name"],
    "Address": lambda o, tz: "",
    "Email": lambda o, tz: o["email"],
    "ApprovalCode": lambda o, tz: o["approval_code"],
    "CVC2": lambda o, tz: "",
    "CardHolder": lambda o, tz: o["card_holder"],
    "IPAddress": lambda o, tz: "",
    "BillNumber": lambda o, tz: o["bill_number"],
    "BankName": lambda o, tz: "SANDBOX BANK",
    "Status": lambda o, tz: STATUS_NAMES[o["status"]],
    "Error_Code": lambda o, tz: o["response_code"] if _failed(o) else "",
    "Error_Comment": lambda o, tz: _message(o)[0] if _failed(o) else "",
    "PacketDate": lambda o, tz: format_time(o["updated_at"], tz),
    "PaymentType": lambda o, tz: "1",
    "Phone": lambda o, tz: o["phone"],
    "Customer_IDP": lambda o, tz: o["customer_id"],
    "Card_IDP": lambda o, tz: "",
    "parent_order_number": lambda o, tz: o["parent_order_id"],
    "need_confirm": lambda o, tz: "1" if o["preauth"] else "0",
    "PT_Code": lambda o, tz: o["pt_code"],
    "EMoneyType": lambda o, tz: o["emoney_type"],
    "ECI": lambda o, tz: "",
    "AcquirerID": lambda o, tz: "SANDBOX",
    "IssuerName": lambda o, tz: "SANDBOX BANK",
    "Token_IDP": lambda o, tz: "",
}
FIELDS_BY_LOWER_NAME = {name.lower(): name for name in FIELDS}

# The columns of the /recurrent/ and /unblock/ answers and the default of /results/.
ANSWER_COLUMNS = (
    "OrderNumber;Response_Code;Recommendation;Message;Comment;Date;Total;Currency;"
    "CardType;CardNumber;LastName;FirstName;MiddleName;Address;Email;ApprovalCode;"
    "CVC2;CardHolder;IPAddress;BillNumber;BankName;Status;Error_Code;Error_Comment;"
    "PacketDate;PaymentType;Phone"
).split(";")

CALLBACK_FIELDS = frozenset(
    "BillNumber ApprovalCode Total Balance Customer_IDP Card_IDP CardNumber "
    "PaymentType ECI AcquirerID IssuerName EMoneyType Token_IDP".split()
)


# Uniteller's limit on CallbackFields (v1.43, Table 2 #16).
CALLBACK_FIELDS_MAX = 29


def valid_callback_fields(text: str) -> bool:
    """Tell whether CallbackFields fits Uniteller's limit and names known fields."""
    return len(text) <= CALLBACK_FIELDS_MAX and all(
        name in CALLBACK_FIELDS for name in text.split()
    )


def parse_field_list(text: str) -> list[str]:
    """Resolve a ;-separated S_FIELDS value; raise ValueError naming an unknown one."""
    names = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        if item.lower() not in FIELDS_BY_LOWER_NAME:
            raise ValueError(item)
        names.append(FIELDS_BY_LOWER_NAME[item.lower()])
    return names


def field_values(order: dict, names, tz) -> list[str]:
    """Return the order's values of the named fields, in order."""
    return [FIELDS[name](order, tz) for name in names]


def _clean(value: str, delimiter: str) -> str:
    # No quoting in Uniteller's CSV: keep every row on one line and in its columns.
    return value.replace(delimiter, " ").replace("\r", " ").replace("\n", " ")


def render_csv(orders, names, tz, header=False, delimiter=";") -> str:
    """Render orders as delimiter-separated rows ending CRLF."""
    lines = [delimiter.join(names)] if header else []
    for order in orders:
        values = field_values(order, names, tz)
        lines.append(delimiter.join(_clean(value, delimiter) for value in values))
    return "".join(line + CRLF for line in lines)


def render_xml(orders, names, tz) -> str:
    """Render orders in Uniteller's <unitellerresult> XML shape."""
    parts = [
        "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>",
        f"<unitellerresult firstcode='' secondcode='' count='{len(orders)}'>",
        "<orders>",
    ]
    for order in orders:
        parts.append("<order>")
        for name, value in zip(names, field_values(order, names, tz), strict=True):
            tag = name.lower()
            parts.append(f"<{tag}>{escape(value)}</{tag}>")
        parts.append("</order>")
    parts.append("</orders></unitellerresult>")
    return "".join(parts)


def render_error(code: int, text: str) -> str:
    """Render an ErrorCode;ErrorMessage answer of /recurrent/, /unblock/, /confirm/."""
    return f"ErrorCode;ErrorMessage{CRLF}{code};{text}{CRLF}"


def _moment(values, prefix: str, tz, end: bool) -> float | None:
    parts = {
        k: values.get(prefix + k, "") for k in ("Day", "Month", "Year", "Hour", "Min")
    }
    if not any(parts.values()):
        return None
    if not all(parts[k] for k in ("Day", "Month", "Year")):
        raise ValueError(
            f"Incomplete period: {prefix}Day, {prefix}Month and "
            f"{prefix}Year are all required"
        )
    if parts["Min"] and not parts["Hour"]:
        raise ValueError(f"Incomplete period: {prefix}Min without {prefix}Hour")
    try:
        moment = datetime(
            int(parts["Year"]),
            int(parts["Month"]),
            int(parts["Day"]),
            int(parts["Hour"] or (23 if end else 0)),
            int(parts["Min"] or (59 if end else 0)),
            59 if end else 0,
            # An inclusive end covers the whole of its last second.
            999999 if end else 0,
            tzinfo=tz,
        )
    except ValueError:
        raise ValueError(f"Bad {prefix} date") from None
    return moment.timestamp()


def parse_period(values, tz) -> tuple[float, float] | None:
    """Return the (start, end) of a results period, None if none; ValueError if bad."""
    start = _moment(values, "Start", tz, end=False)
    end = _moment(values, "End", tz, end=True)
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise ValueError("Incomplete period: both its start and its end are required")
    if end < start:
        raise ValueError("The period ends before it starts")
    if end - start > MAX_PERIOD.total_seconds():
        raise ValueError("The period must not exceed 7 days")
    return start, end


def render_signed_answer(order: dict, tz, signature: str) -> str:
    """Render the /recurrent/ answer: header, one value line, its Signature last."""
    header = ";".join([*ANSWER_COLUMNS, "Signature"])
    values = [_clean(value, ";") for value in field_values(order, ANSWER_COLUMNS, tz)]
    return header + CRLF + ";".join([*values, signature]) + CRLF
