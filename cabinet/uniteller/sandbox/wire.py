"""Format what goes over the wire: amounts, dates, result fields, CSV and XML."""

import json
import re
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

from . import bank

AMOUNT_PATTERN = re.compile(r"\d+(\.\d{1,2})?")
CRLF = "\r\n"
MAX_PERIOD = timedelta(days=7)

# Internal lower-case status -> the capitalised name of /results/ (v1.43 §4.6.1.1,
# note 13: callbacks spell statuses in lower case, /results/ capitalised).
STATUS_NAMES = {
    "waiting": "Waiting",
    "authorized": "Authorized",
    "paid": "Paid",
    "canceled": "Canceled",
    "not authorized": "Not Authorized",
    "partly canceled": "Partly canceled",
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


def _unmodelled(order: dict, tz) -> str:
    return ""


# Field name -> value getter(order, tz): what /results/, the answers and the
# callbacks report. Names the sandbox does not model report an empty value.
FIELDS = {
    "OrderNumber": lambda o, tz: o["order_id"],
    "Response_Code": lambda o, tz: o["response_code"],
    "Recommendation": lambda o, tz: _message(o)[1],
    "Message": lambda o, tz: _message(o)[0],
    "Comment": lambda o, tz: o["comment"],
    "Date": lambda o, tz: format_time(o["created_at"], tz),
    # An SBP order's Total is its balance: 0 once refunded (v1.43 §4.5.2.4).
    "Total": lambda o, tz: format_amount(
        o["balance"] if o.get("payment_type") == SBP else o["amount"]
    ),
    "Sum": lambda o, tz: format_amount(o["amount"]),
    "Balance": lambda o, tz: format_amount(o["balance"]),
    "Currency": lambda o, tz: o["currency"],
    "CardType": lambda o, tz: bank.card_type(o["card_masked"]),
    "CardNumber": lambda o, tz: o["card_masked"],
    "LastName": lambda o, tz: o["last_name"],
    "FirstName": lambda o, tz: o["first_name"],
    "MiddleName": lambda o, tz: o["middle_name"],
    "Email": lambda o, tz: o["email"],
    "ApprovalCode": lambda o, tz: o["approval_code"],
    # A recurrent charge goes without CVC2 (v1.43 §4.3.2).
    "CVC2": lambda o, tz: "0" if o["kind"] == "recurrent" else "1",
    "CardHolder": lambda o, tz: o["card_holder"],
    "BillNumber": lambda o, tz: o["bill_number"],
    "BankName": lambda o, tz: "SANDBOX BANK",
    "Status": lambda o, tz: STATUS_NAMES[o["status"]],
    "Error_Code": lambda o, tz: o["response_code"] if _failed(o) else "",
    "Error_Comment": lambda o, tz: _message(o)[0] if _failed(o) else "",
    "PacketDate": lambda o, tz: format_time(o["updated_at"], tz),
    "PaymentType": lambda o, tz: o.get("payment_type") or "1",
    "QrcId": lambda o, tz: o.get("qrc_id", ""),
    # The NSPK's refund request id (SBP v04 §3); not modelled.
    "OpkcID": lambda o, tz: "",
    "Phone": lambda o, tz: o["phone"],
    "Customer_IDP": lambda o, tz: o["customer_id"],
    "parent_order_number": lambda o, tz: o["parent_order_id"],
    # "1" while a Preauth=1 block waits for /confirm/ (v1.43 §8.1).
    "need_confirm": lambda o, tz: _needs_confirm(o),
    "PT_Code": lambda o, tz: o["pt_code"],
    "EMoneyType": lambda o, tz: o["emoney_type"],
    "AcquirerID": lambda o, tz: "SANDBOX",
    "IssuerName": lambda o, tz: "SANDBOX BANK",
    # Filled by /v2/results only (fiscal 02.1.18 §3.16); /results/ has no
    # receipts (§1.2.11).
    "Receipt": lambda o, tz: o.get("fiscal_receipt", ""),
}

# The names S_FIELDS may list, spelt exactly as v1.43 §8.1 spells them; any other
# name (Balance among them: a callback field only) is an error answer.
S_FIELDS_NAMES = (
    "Address ApprovalCode BankName BillNumber bookingcom_id bookingcom_pincode "
    "Card_IDP CardHolder CardNumber CardType Comment Currency CVC2 Date Email "
    "EMoneyType EOrderData Error_Code Error_Comment FirstName gds_payment_purpose_id "
    "IData IPAddress LastName LkOrderUrl LoanID Message MiddleName need_confirm "
    "OrderNumber parent_order_number PaymentType Phone PT_Code QrcId Receipt "
    "Recommendation Response_Code SberOrderId Sum Status Token_IDP Total "
    "tpayRequestId AcquirerID CardSubType Country IsOtherCard PacketDate "
    "ProcessingName ProtocolTypeName Rate"
).split()

# The columns of the /recurrent/ and /unblock/ answers and the default of /results/.
ANSWER_COLUMNS = (
    "OrderNumber;Response_Code;Recommendation;Message;Comment;Date;Total;Currency;"
    "CardType;CardNumber;LastName;FirstName;MiddleName;Address;Email;ApprovalCode;"
    "CVC2;CardHolder;IPAddress;BillNumber;BankName;Status;Error_Code;Error_Comment;"
    "PacketDate;PaymentType;Phone"
).split(";")

# The names CallbackFields may list (v1.43 §4.6.1.2, SBP v04 §3 adds QrcId, OpkcID).
CALLBACK_FIELDS = frozenset(
    "BillNumber ApprovalCode Total Balance Customer_IDP Card_IDP CardNumber "
    "PaymentType ECI AcquirerID IssuerName EMoneyType Token_IDP QrcId OpkcID".split()
)
# PaymentTypeLimits' types (v1.43 Table 2 #10): card, SBP C2B, SberPay, T-Pay,
# SBP B2B, Yandex Split. The sandbox takes payments of the first two.
PAYMENT_TYPES = ("1", "13", "14", "15", "16", "18")
CARD, SBP = "1", "13"


def parse_payment_types(text: str) -> tuple | None:
    """Read PaymentTypeLimits into the types it allows (a card if empty).

    None if it is not the spec's JSON object {type: [amount, amount]} of
    known types.
    """
    if not text:
        return (CARD,)
    try:
        limits = json.loads(text)
    except ValueError:
        return None
    if not isinstance(limits, dict) or not limits:
        return None
    for key, amounts in limits.items():
        numbers = isinstance(amounts, list) and all(
            isinstance(a, int | float) and not isinstance(a, bool) and a >= 0
            for a in amounts
        )
        if key not in PAYMENT_TYPES or not amounts or not numbers:
            return None
    return tuple(key for key in PAYMENT_TYPES if key in limits)


# Not filled for SBP payments, and left out of their callbacks (v1.43 §4.1.9).
NOT_FOR_SBP = frozenset(
    "BillNumber ApprovalCode Card_IDP CardNumber Customer_IDP ECI EMoneyType".split()
)


# Uniteller's limit on CallbackFields (v1.43, Table 2 #16).
CALLBACK_FIELDS_MAX = 29


def valid_callback_fields(text: str) -> bool:
    """Tell whether CallbackFields fits Uniteller's limit and names known fields."""
    return len(text) <= CALLBACK_FIELDS_MAX and all(
        name in CALLBACK_FIELDS for name in text.split()
    )


def parse_field_list(text: str) -> list[str]:
    """Read a ;-separated S_FIELDS value; raise ValueError naming an unknown one.

    Names are matched exactly: `billnumber` or `Balance` is an error, as at
    Uniteller.
    """
    names = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        if item not in S_FIELDS_NAMES:
            raise ValueError(item)
        names.append(item)
    return names


def _needs_confirm(order: dict) -> str:
    return "1" if order["preauth"] and order["status"] == "authorized" else "0"


def field_values(order: dict, names, tz) -> list[str]:
    """Return the order's values of the named fields, in order."""
    return [FIELDS.get(name, _unmodelled)(order, tz) for name in names]


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


def _xml_orders(orders, names, tz) -> list[str]:
    parts = []
    for order in orders:
        parts.append("<order>")
        for name, value in zip(names, field_values(order, names, tz), strict=True):
            tag = name.lower()
            parts.append(f"<{tag}>{escape(value)}</{tag}>")
        parts.append("</order>")
    return parts


def render_results_xml(orders, names, tz, request: dict) -> str:
    """Render a /results/ answer in Format=4 (v1.43 §8.3.1.5).

    The <request> block echoes the query, <field> names the columns (Header and
    Header1 are always on in XML, Table 34), then one <order> per row.
    """
    parts = [
        "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>",
        f"<unitellerresult firstcode='' secondcode='' count='{len(orders)}'>",
        "<request>",
        *(f"<{tag}>{escape(value)}</{tag}>" for tag, value in request.items()),
        "</request>",
        "<orders>",
        "<field>",
        *(f"<{name.lower()}>{escape(name)}</{name.lower()}>" for name in names),
        "</field>",
        *_xml_orders(orders, names, tz),
        "</orders></unitellerresult>",
    ]
    return "".join(parts)


# The head of an /unblock/ XML answer (Format=3), its DTD as v1.43 §8.3.2.3 prints it.
OPERATION_XML_HEAD = (
    '<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n'
    "<!DOCTYPE unitellerresult [\n"
    "<!ATTLIST unitellerresult firstcode CDATA #REQUIRED"
    " secondcode CDATA #REQUIRED count CDATA #REQUIRED>\n"
    "<!ELEMENT result (orders?)>\n"
    "<!ELEMENT orders (order)>\n"
    "<!ELEMENT order ("
    + ", ".join(f"{name.lower()}?" for name in ANSWER_COLUMNS)
    + ")>\n"
    + "".join(f"<!ELEMENT {name.lower()} (#PCDATA)>\n" for name in ANSWER_COLUMNS)
    + "]>\n"
)


def render_operation_xml(orders, names, tz) -> str:
    """Render an /unblock/ or /confirm/ answer in Format=3 (v1.43 §8.3.2.3.1)."""
    return (
        OPERATION_XML_HEAD
        + f'<unitellerresult firstcode="" secondcode="" count="{len(orders)}">'
        + "<orders>"
        + "".join(_xml_orders(orders, names, tz))
        + "</orders></unitellerresult>"
    )


def render_operation_xml_error(code: int, text: str) -> str:
    """Render an /unblock/ or /confirm/ refusal in Format=3: codes in attributes."""
    first, second = escape(str(code), {'"': "&quot;"}), escape(text, {'"': "&quot;"})
    return (
        OPERATION_XML_HEAD
        + f'<unitellerresult firstcode="{first}" secondcode="{second}" count="0">'
        + "<orders></orders></unitellerresult>"
    )


def render_error(code: int, text: str) -> str:
    """Render an ErrorCode;ErrorMessage answer of /recurrent/, /unblock/, /confirm/."""
    return f"ErrorCode;ErrorMessage{CRLF}{code};{text}{CRLF}"


PERIOD_PARTS = ("Day", "Month", "Year", "Hour", "Min")


def _date_needed(prefix: str) -> str:
    # v1.43 Table 34 prints "to setEndDate."; the sandbox keeps the space.
    return (
        f"You need to specify {prefix}Year, {prefix}Month and {prefix}Day"
        f" to set {prefix}Date."
    )


def _time_needed(prefix: str) -> str:
    return (
        f"You need to specify {prefix}Year, {prefix}Month, {prefix}Day,"
        f" {prefix}Hour and {prefix}Min to set {prefix}Date with time."
    )


def _moment(values, prefix: str, tz, end: bool) -> float | None:
    """Read one end of a period: 3 parts (a whole day) or all 5 (to the minute)."""
    parts = {k: values.get(prefix + k, "") for k in PERIOD_PARTS}
    if not any(parts.values()):
        return None
    timed = bool(parts["Hour"] or parts["Min"])
    if timed and not all(parts.values()):
        raise ValueError(_time_needed(prefix))
    if not all(parts[k] for k in ("Day", "Month", "Year")):
        raise ValueError(_date_needed(prefix))
    try:
        moment = datetime(
            int(parts["Year"]),
            int(parts["Month"]),
            int(parts["Day"]),
            int(parts["Hour"]) if timed else (23 if end else 0),
            int(parts["Min"]) if timed else (59 if end else 0),
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
        raise ValueError(_date_needed("Start" if start is None else "End"))
    if end < start:
        raise ValueError("The period ends before it starts")
    if end - start > MAX_PERIOD.total_seconds():
        raise ValueError("The period must not exceed 7 days")
    return start, end


def render_signed_answer(
    order: dict, tz, signature: str, receipt: str | None = None
) -> str:
    """Render the /recurrent/ answer: header, one value line, its Signature.

    /v2/recurrent adds its Receipt column after the Signature (fiscal 02.1.18
    §3.6 names the field, not its place).
    """
    names = [*ANSWER_COLUMNS, "Signature"]
    values = [_clean(value, ";") for value in field_values(order, ANSWER_COLUMNS, tz)]
    values.append(signature)
    if receipt is not None:
        names.append("Receipt")
        values.append(receipt)
    return ";".join(names) + CRLF + ";".join(values) + CRLF
