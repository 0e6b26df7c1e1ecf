"""A client of Uniteller's merchant API: builds signed forms, talks to the server."""

import csv
import io
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import requests

from ..money import format_wire
from . import signatures

DEFAULT_GATEWAY_URL = "https://wpay.uniteller.ru"

# Statuses as Uniteller spells them in callbacks and /results/, mapped to ours.
_STATUS_WORDS = {
    "authorized": "authorized",
    "paid": "paid",
    "waiting": "waiting",
    "canceled": "canceled",
    "cancelled": "canceled",
    "not authorized": "failed",
    "not_authorized": "failed",
    "partly canceled": "partly_canceled",
    "partly cancelled": "partly_canceled",
    "partly_canceled": "partly_canceled",
}


def normalize_status(word):
    """Map a Uniteller status word ("Paid", "cancelled", …) to ours, or None."""
    if not isinstance(word, str):
        return None
    return _STATUS_WORDS.get(" ".join(word.strip().lower().split()))


# What the status check asks /results/ for, in this column order.
RESULT_FIELDS = (
    "OrderNumber",
    "Status",
    "Total",
    "BillNumber",
    "ApprovalCode",
    "Response_Code",
    "Message",
    "Date",
)
# The longest Email Uniteller's payment page accepts (v1.43, Table 2).
EMAIL_MAX = 64
# Uniteller keeps its clock, and reads the period we ask for, in Moscow time: the
# default of the UNITELLER_TIMEZONE setting (the spec does not name a zone).
UNITELLER_TIMEZONE = ZoneInfo("Europe/Moscow")


def period_fields(start, end, timezone=UNITELLER_TIMEZONE):
    """Spell a /results/ period (aware datetimes) in Uniteller's timezone."""
    fields = {}
    for prefix, moment in (("Start", start), ("End", end)):
        if moment is not None:
            local = moment.astimezone(timezone)
            fields.update(
                {
                    f"{prefix}Day": str(local.day),
                    f"{prefix}Month": str(local.month),
                    f"{prefix}Year": str(local.year),
                    f"{prefix}Hour": str(local.hour),
                    f"{prefix}Min": str(local.minute),
                }
            )
    return fields


class UnitellerError(Exception):
    """Uniteller did not answer as asked; nothing it said may change a transaction."""


class GatewayUnavailable(UnitellerError):
    """A timeout, a connection failure or an HTTP 5xx: try again later."""


class RateLimited(UnitellerError):
    """HTTP 429: more requests than Uniteller allows (one per 5 s per shop)."""


class GatewayRefused(UnitellerError):
    """Uniteller answered "ERROR: …" (bad credentials, bad parameters)."""


class UnexpectedAnswer(UnitellerError):
    """HTTP 200 with a body that is not Uniteller's format: nothing of it is used."""


class OperationRefused(UnitellerError):
    """An `ErrorCode;ErrorMessage` answer of /recurrent/, /unblock/ or /confirm/."""

    def __init__(self, path, code, message):
        super().__init__(f"{path}: error {code}: {message}")
        self.code = code
        self.message = message


def parse_operation_answer(path, text):
    """Parse a header line + value line answer into a dict; raise on ErrorCode."""
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if len(lines) < 2:
        raise GatewayUnavailable(f"{path}: answer of {len(lines)} lines")
    header = lines[0].split(";")
    values = next(csv.reader([lines[1]], delimiter=";"))
    if header[:2] == ["ErrorCode", "ErrorMessage"]:
        code = values[0].strip() if values else ""
        raise OperationRefused(
            path, int(code) if code.isdigit() else code, ";".join(values[1:]).strip()
        )
    return dict(zip(header, values, strict=False))


@dataclass(frozen=True)
class PayForm:
    """A signed form for the subscriber's browser to post to Uniteller's /pay/."""

    action: str
    fields: dict = field(default_factory=dict)


class UnitellerClient:
    """Uniteller for one shop: its gateway URL and credentials."""

    def __init__(
        self,
        gateway_url,
        shop_id,
        password,
        login="",
        timeout=30,
        timezone=UNITELLER_TIMEZONE,
    ):
        self.gateway_url = (gateway_url or DEFAULT_GATEWAY_URL).rstrip("/")
        self.shop_id = shop_id
        self.login = login
        self._password = password
        self.timeout = timeout
        self.timezone = ZoneInfo(timezone) if isinstance(timezone, str) else timezone

    def __repr__(self):
        # Never show the password, even in a traceback.
        return f"<UnitellerClient {self.gateway_url} shop={self.shop_id}>"

    def pay_form(
        self,
        order_id,
        amount_kopecks,
        url_ok,
        url_no,
        customer_id="",
        lifetime=None,
        email="",
        language="ru",
        callback_fields=(),
        recurrent_start=False,
    ):
        """Build the signed /pay/ form for one order."""
        subtotal = format_wire(amount_kopecks)
        lifetime = "" if lifetime is None else str(lifetime)
        fields = {
            "Shop_IDP": self.shop_id,
            "Order_IDP": order_id,
            "Subtotal_P": subtotal,
            "Lifetime": lifetime,
            "Customer_IDP": customer_id,
        }
        fields["Signature"] = signatures.pay_signature(
            self._password,
            self.shop_id,
            order_id,
            subtotal,
            lifetime=lifetime,
            customer_idp=customer_id,
        )
        fields["URL_RETURN_OK"] = url_ok
        fields["URL_RETURN_NO"] = url_no
        if language:
            fields["Language"] = language
        # Longer than Uniteller takes, the payer types one on its page instead.
        if email and len(email) <= EMAIL_MAX:
            fields["Email"] = email
        if callback_fields:
            fields["CallbackFields"] = " ".join(callback_fields)
        if recurrent_start:
            fields["IsRecurrentStart"] = "1"
        # An empty field signs as md5(""); sending it empty is the same, but tidier
        # to leave out.
        fields = {k: v for k, v in fields.items() if v != ""}
        return PayForm(action=f"{self.gateway_url}/pay/", fields=fields)

    def callback_is_authentic(self, fields, callback_fields=()):
        """Check a callback's signature: fields in the listed CallbackFields order."""
        order_id = fields.get("Order_ID")
        status = fields.get("Status")
        if (
            not self._password
            or not isinstance(order_id, str)
            or not isinstance(status, str)
        ):
            return False
        extra = []
        for name in callback_fields:
            value = fields.get(name, "")
            extra.append(value if isinstance(value, str) else str(value))
        expected = signatures.callback_signature(
            self._password, order_id, status, extra
        )
        return signatures.signatures_match(expected, fields.get("Signature"))

    def results(self, order_id=None, start=None, end=None, fields=RESULT_FIELDS):
        """Ask /results/ for one order and/or a period; return one dict per order."""
        data = {
            "Shop_ID": self.shop_id,
            "Login": self.login,
            "Password": self._password,
            "Format": "1",
            "S_FIELDS": ";".join(fields),
        }
        if order_id is not None:
            data["ShopOrderNumber"] = order_id
        data.update(period_fields(start, end, self.timezone))
        text = self._post("/results/", data)
        rows = [
            dict(zip(fields, row, strict=True))
            for row in csv.reader(io.StringIO(text), delimiter=";")
            if len(row) == len(fields)
        ]
        if text.strip() and not rows:
            # Not "no orders" (an empty answer): something else answered.
            raise UnexpectedAnswer("/results/: HTTP 200, not Uniteller's format")
        return rows

    def unblock(self, bill_number, amount_kopecks=None):
        """Refund (or reverse) a payment by its BillNumber, in full or in part."""
        data = {
            "Billnumber": bill_number,
            "Shop_ID": self.shop_id,
            "Login": self.login,
            "Password": self._password,
            "Format": "1",
        }
        if amount_kopecks is not None:
            data["Subtotal_P"] = format_wire(amount_kopecks)
        return parse_operation_answer("/unblock/", self._post("/unblock/", data))

    def _post(self, path, data):
        """POST a server-to-server request (credentials in the body, never the URL)."""
        try:
            response = requests.post(
                self.gateway_url + path, data=data, timeout=self.timeout
            )
        except requests.RequestException as exc:
            # The exception text names the URL only; the body with the password
            # is not in it.
            raise GatewayUnavailable(f"{path}: {type(exc).__name__}") from None
        if response.status_code == 429:
            raise RateLimited(f"{path}: HTTP 429")
        if response.status_code >= 400:
            raise GatewayUnavailable(f"{path}: HTTP {response.status_code}")
        text = response.content.decode("utf-8", "replace")
        head = text.lstrip().upper()
        # "ERROR: …" is /results/' refusal; an "ErrorCode;ErrorMessage" answer
        # of the operations is parsed by parse_operation_answer.
        if head.startswith("ERROR") and not head.startswith("ERRORCODE;"):
            raise GatewayRefused(f"{path}: {text.strip()[:200]}")
        return text

    def recurrent(self, order_id, amount_kopecks, parent_order_id, parent_shop_id=None):
        """Charge the card of a parent order again; return the answer's fields."""
        subtotal = format_wire(amount_kopecks)
        data = {
            "Shop_IDP": self.shop_id,
            "Order_IDP": order_id,
            "Subtotal_P": subtotal,
            "Parent_Order_IDP": parent_order_id,
            "Signature": signatures.recurrent_signature(
                self._password,
                self.shop_id,
                order_id,
                subtotal,
                parent_order_id,
                parent_shop_idp=parent_shop_id,
            ),
        }
        if parent_shop_id is not None:
            data["Parent_Shop_IDP"] = parent_shop_id
        answer = parse_operation_answer("/recurrent/", self._post("/recurrent/", data))
        expected = signatures.recurrent_answer_signature(
            self._password, answer.get("OrderNumber", ""), answer.get("Total", "")
        )
        if not signatures.signatures_match(expected, answer.get("Signature")):
            # An answer we cannot trust is no answer: /results/ decides.
            raise GatewayUnavailable("/recurrent/: the answer's signature is wrong")
        return answer
