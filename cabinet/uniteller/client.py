"""A client of Uniteller's merchant API: builds signed forms, talks to the server."""

import json
import logging
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import requests

from ..money import format_wire
from . import signatures

log = logging.getLogger(__name__)

DEFAULT_GATEWAY_URL = "https://wpay.uniteller.ru"
# Payments with fiscalization have a host of their own (fiscal 02.1.18 §3).
DEFAULT_FISCAL_GATEWAY_URL = "https://fpay.uniteller.ru"
# A Receipt field is at most this long once base64-encoded (fiscal Appendix 1).
RECEIPT_MAX = 29999
# Seconds to connect, then to wait for each answer (v1.43 §4.6.3: an early
# /results/ request is held up to 100 s before its 429; the spec's own examples
# give the operations 60 s).
CONNECT_TIMEOUT = 10
READ_TIMEOUTS = {
    "/results/": 110,
    "/recurrent/": 60,
    "/unblock/": 60,
    # The same calls with fiscalization (fiscal 02.1.18 §3.6, §3.14, §3.16).
    "/v2/results": 110,
    "/v2/recurrent": 60,
    "/v2/cancel": 60,
}

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


# What the status check asks /results/ for, in this column order (v1.43 §8.1).
# Uniteller's CSV is not quoted: a free-text field goes last, where a ";" inside
# it can only lengthen the row, and the row is read back whole.
RESULT_FIELDS = (
    "OrderNumber",
    "Status",
    "Total",
    "BillNumber",
    "ApprovalCode",
    "Response_Code",
    "Error_Code",
    "Date",
    "Message",
)
# Every name /results/ takes in S_FIELDS (v1.43 §8.1), exactly so spelt; any other
# is an error answer. Balance, say, is a callback field only.
RESULTS_S_FIELDS = frozenset(
    "Address ApprovalCode BankName BillNumber bookingcom_id bookingcom_pincode "
    "Card_IDP CardHolder CardNumber CardType Comment Currency CVC2 Date Email "
    "EMoneyType EOrderData Error_Code Error_Comment FirstName gds_payment_purpose_id "
    "IData IPAddress LastName LkOrderUrl LoanID Message MiddleName need_confirm "
    "OrderNumber parent_order_number PaymentType Phone PT_Code QrcId Receipt "
    "Recommendation Response_Code SberOrderId Sum Status Token_IDP Total "
    "tpayRequestId AcquirerID CardSubType Country IsOtherCard PacketDate "
    "ProcessingName ProtocolTypeName Rate".split()
)
FREE_TEXT_FIELDS = frozenset({"Message", "Recommendation", "Comment", "Error_Comment"})
# PaymentsResults=3: the order's last attempt plus one row per refund made, each
# with Status "Refund" and its own Total (v1.43 Table 34 #7).
WITH_REFUNDS = "3"
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


# PaymentType of an SBP payment (C2B) in PaymentTypeLimits, callbacks and /results/
# (v1.43 Table 2 #10, §4.6.1.2); 1 is a card.
SBP_PAYMENT_TYPE = "13"
CARD_PAYMENT_TYPE = "1"


def payment_type_limits(payment_type, subtotal):
    """Spell PaymentTypeLimits allowing one type for the whole amount.

    The value is JSON {type: [amount, amount]}; Uniteller takes only a whole
    payment of one type for now (v1.43 Table 2 #10).
    """
    # The amount as Subtotal_P spells it: a JSON number, signed as sent.
    return f'{{"{payment_type}":[{subtotal},{subtotal}]}}'


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


class Results(list):
    """The rows of a /results/ answer; `unreadable` names the rows that did not parse.

    Each unreadable row is named by its order number when it has one ("" if not),
    so that no one takes an order that was answered for one Uniteller does not know.
    """

    def __init__(self, rows=(), unreadable=()):
        super().__init__(rows)
        self.unreadable = list(unreadable)

    def names_unreadable(self, order_id):
        """Tell whether the answer may hold a row of this order that did not parse."""
        return order_id in self.unreadable or "" in self.unreadable


def fit_row(fields, values):
    """Pair a row's values with its fields; a free-text value may hold ";" itself.

    The fields before the free-text ones are read from the left, those after them
    from the right. Returns None if the row has too few values, or a surplus that
    no single run of free-text fields can have caused.
    """
    fields, surplus = list(fields), len(values) - len(fields)
    if surplus == 0:
        return dict(zip(fields, values, strict=True))
    free = [i for i, name in enumerate(fields) if name in FREE_TEXT_FIELDS]
    if surplus < 0 or not free or free != list(range(free[0], free[-1] + 1)):
        return None
    last = free[-1]
    # The last free-text field takes the surplus: nothing tells which of a run
    # held it, and every other field is where it belongs.
    merged = [
        *values[:last],
        ";".join(values[last : last + surplus + 1]),
        *values[last + surplus + 1 :],
    ]
    return dict(zip(fields, merged, strict=True))


def parse_results(text, fields):
    """Read a CSV /results/ answer (`;`, CRLF rows, no quoting) into Results."""
    rows, unreadable = [], []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        values = line.split(";")
        row = fit_row(fields, values)
        if row is not None:
            rows.append(row)
            continue
        order = values[0] if fields[0] == "OrderNumber" and len(values) > 1 else ""
        unreadable.append(order)
        # Only the shape and the order number: a row may hold personal data.
        log.warning(
            "/results/: a row of %d columns where %d were asked (order=%r)",
            len(values),
            len(fields),
            order[:127],
        )
    return Results(rows, unreadable)


def parse_operation_answer(path, text):
    """Parse a header line + value line answer into a dict; raise on ErrorCode."""
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if len(lines) < 2:
        raise GatewayUnavailable(f"{path}: answer of {len(lines)} lines")
    header = lines[0].split(";")
    values = lines[1].split(";")
    if header[:2] == ["ErrorCode", "ErrorMessage"]:
        code = values[0].strip() if values else ""
        raise OperationRefused(
            path, int(code) if code.isdigit() else code, ";".join(values[1:]).strip()
        )
    answer = fit_row(header, values)
    if answer is None:
        # Not the answer's shape: what Uniteller did is unknown, not refused.
        raise GatewayUnavailable(
            f"{path}: a value line of {len(values)} columns under {len(header)}"
        )
    return answer


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
        timeouts=None,
        timezone=UNITELLER_TIMEZONE,
        fiscal_gateway_url=None,
    ):
        self.gateway_url = (gateway_url or DEFAULT_GATEWAY_URL).rstrip("/")
        self.fiscal_gateway_url = (
            fiscal_gateway_url or DEFAULT_FISCAL_GATEWAY_URL
        ).rstrip("/")
        self.shop_id = shop_id
        self.login = login
        self._password = password
        self.timeouts = {**READ_TIMEOUTS, **(timeouts or {})}
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
        receipt=None,
        sbp=False,
    ):
        """Build the signed /pay/ form for one order (/v2/pay with a receipt).

        sbp: only SBP on Uniteller's page (PaymentTypeLimits, SBP v04 §4).
        """
        subtotal = format_wire(amount_kopecks)
        lifetime = "" if lifetime is None else str(lifetime)
        limits = payment_type_limits(SBP_PAYMENT_TYPE, subtotal) if sbp else None
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
            payment_type_limits=limits,
        )
        if limits is not None:
            fields["PaymentTypeLimits"] = limits
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
        if receipt is None:
            return PayForm(action=f"{self.gateway_url}/pay/", fields=fields)
        # The ordinary Signature stays as it is; the receipt has its own
        # (fiscal 02.1.18 §3.1).
        fields["Receipt"] = receipt
        fields["ReceiptSignature"] = signatures.receipt_signature(
            self._password, self.shop_id, order_id, subtotal, receipt
        )
        return PayForm(action=f"{self.fiscal_gateway_url}/v2/pay", fields=fields)

    @property
    def timeout(self):
        """The longest a request of this client may take (connect and answer)."""
        return CONNECT_TIMEOUT + max(self.timeouts.values())

    def timeout_of(self, path):
        """The longest a request to `path` (`"/recurrent/"`) may take."""
        return CONNECT_TIMEOUT + self.timeouts[path]

    def callback_is_authentic(self, fields, callback_fields=()):
        """Check a callback's signature, in CallbackFields order or the fiscal one.

        A shop switched to fiscal payments at Uniteller signs ApprovalCode,
        BillNumber and Total first, in that order (fiscal 02.1.18 §3.15); the
        switch is made in Uniteller's cabinet, so both orders are accepted.
        """
        order_id = fields.get("Order_ID")
        status = fields.get("Status")
        if (
            not self._password
            or not isinstance(order_id, str)
            or not isinstance(status, str)
        ):
            return False
        given = fields.get("Signature")
        for order in _signing_orders(callback_fields):
            extra = []
            for name in order:
                value = fields.get(name, "")
                extra.append(value if isinstance(value, str) else str(value))
            expected = signatures.callback_signature(
                self._password, order_id, status, extra
            )
            if signatures.signatures_match(expected, given):
                return True
        return False

    def results(
        self,
        order_id=None,
        start=None,
        end=None,
        fields=RESULT_FIELDS,
        payments_results=None,
        fiscal=False,
    ):
        """Ask /results/ for one order and/or a period; return Results (dicts).

        fiscal: ask the fiscal host's /v2/results, whose rows may also carry the
        order's fiscalized receipts (the `Receipt` field, fiscal §3.16).
        """
        unknown = [name for name in fields if name not in RESULTS_S_FIELDS]
        if unknown:
            raise ValueError(f"not a /results/ field: {', '.join(unknown)}")
        data = {
            "Shop_ID": self.shop_id,
            "Login": self.login,
            "Password": self._password,
            "Format": "1",
            "S_FIELDS": ";".join(fields),
        }
        if order_id is not None:
            data["ShopOrderNumber"] = order_id
        if payments_results is not None:
            data["PaymentsResults"] = payments_results
        data.update(period_fields(start, end, self.timezone))
        path = "/v2/results" if fiscal else "/results/"
        text = self._post(path, data)
        rows = parse_results(text, fields)
        if not rows and ";" not in text:
            # Not "no orders" (an empty answer) nor rows of an odd shape (counted
            # as unreadable): something else answered.
            if text.strip():
                raise UnexpectedAnswer(f"{path}: HTTP 200, not Uniteller's format")
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

    def cancel(self, order_id, amount_kopecks=None, receipt=None):
        """Refund through /v2/cancel with a refund receipt (fiscal 02.1.18 §3.14).

        amount None is a full refund: Subtotal is then not sent, as the spec
        asks. Returns the answer's JSON object (Code, Note, Receipt, Status,
        Balance); Code "0" or "00" is success, any other is the refusal's code.
        """
        data = {"OrderID": order_id, "UPID": self.shop_id}
        subtotal = None if amount_kopecks is None else format_wire(amount_kopecks)
        if subtotal is not None:
            data["Subtotal"] = subtotal
        if receipt is not None:
            data["Receipt"] = receipt
        data["Signature"] = signatures.cancel_signature(
            self._password, order_id, self.shop_id, subtotal, receipt
        )
        text = self._post("/v2/cancel", data, base=self.fiscal_gateway_url)
        try:
            answer = json.loads(text)
        except ValueError:
            raise UnexpectedAnswer("/v2/cancel: HTTP 200, not JSON") from None
        if not isinstance(answer, dict) or "Code" not in answer:
            raise UnexpectedAnswer("/v2/cancel: HTTP 200, no Code")
        return answer

    def _post(self, path, data, base=None):
        """POST a server-to-server request (credentials in the body, never the URL)."""
        if base is None:
            base = (
                self.fiscal_gateway_url
                if path.startswith("/v2/")
                else (self.gateway_url)
            )
        try:
            response = requests.post(
                base + path,
                data=data,
                timeout=(CONNECT_TIMEOUT, self.timeouts[path]),
            )
        except requests.RequestException as exc:
            # The exception text names the URL only; the body with the password
            # is not in it.
            raise GatewayUnavailable(f"{path}: {type(exc).__name__}") from None
        if response.status_code == 429:
            # Uniteller held the request as long as it holds any, then refused:
            # our turn has not come, nothing is wrong with the request.
            raise RateLimited(f"{path}: HTTP 429, asked to wait")
        if response.status_code >= 400:
            raise GatewayUnavailable(f"{path}: HTTP {response.status_code}")
        text = response.content.decode("utf-8", "replace")
        head = text.lstrip().upper()
        # "ERROR: …" is /results/' refusal; an "ErrorCode;ErrorMessage" answer
        # of the operations is parsed by parse_operation_answer.
        if head.startswith("ERROR") and not head.startswith("ERRORCODE;"):
            raise GatewayRefused(f"{path}: {text.strip()[:200]}")
        return text

    def recurrent(
        self,
        order_id,
        amount_kopecks,
        parent_order_id,
        parent_shop_id=None,
        receipt=None,
    ):
        """Charge the card of a parent order again; return the answer's fields.

        With a receipt the charge goes to the fiscal host's /v2/recurrent
        (fiscal 02.1.18 §3.6), signed as before plus its ReceiptSignature.
        """
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
        path = "/recurrent/"
        if receipt is not None:
            path = "/v2/recurrent"
            data["Receipt"] = receipt
            data["ReceiptSignature"] = signatures.receipt_signature(
                self._password, self.shop_id, order_id, subtotal, receipt
            )
        answer = parse_operation_answer(path, self._post(path, data))
        expected = signatures.recurrent_answer_signature(
            self._password, answer.get("OrderNumber", ""), answer.get("Total", "")
        )
        if not signatures.signatures_match(expected, answer.get("Signature")):
            # An answer we cannot trust is no answer: /results/ decides.
            raise GatewayUnavailable(f"{path}: the answer's signature is wrong")
        return answer

    def check_receipt_signature(self, order_id, status, receipt, given):
        """Compare a given ReceiptSignature of a callback with the expected one."""
        if not self._password or not all(
            isinstance(v, str) for v in (order_id, status, receipt)
        ):
            return False
        expected = signatures.fiscal_callback_signature(
            self._password, order_id, status, receipt
        )
        return signatures.signatures_match(expected, given)


# Fiscal shops sign these callback fields first, in this order (fiscal §3.15).
_FISCAL_FIRST = ("ApprovalCode", "BillNumber", "Total")


def _signing_orders(callback_fields):
    """The field orders a callback may be signed in: as listed, then the fiscal one."""
    listed = tuple(callback_fields)
    fiscal = tuple(name for name in _FISCAL_FIRST if name in listed) + tuple(
        name for name in listed if name not in _FISCAL_FIRST
    )
    return (listed,) if fiscal == listed else (listed, fiscal)
