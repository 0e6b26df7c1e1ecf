"""Serve what Uniteller serves: the payment page and the server-to-server API."""

import functools
import time
from urllib.parse import urlencode, urlsplit, urlunsplit

import segno
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
)
from markupsafe import Markup

from . import bank, cashbox
from .engine import (
    FiscalOperationError,
    OperationError,
    PayPageError,
    fiscal_answer,
    sbp_payload,
)
from .pacing import TooManyRequests
from .paypage import (
    MerchantError,
    read_card,
    validate_fiscal_pay_request,
    validate_pay_request,
)
from .signatures import recurrent_answer_signature
from .wire import (
    ANSWER_COLUMNS,
    CARD,
    SBP,
    format_amount,
    format_time,
    parse_amount,
    parse_field_list,
    parse_payment_types,
    parse_period,
    render_csv,
    render_error,
    render_operation_xml,
    render_operation_xml_error,
    render_results_xml,
    render_signed_answer,
)

bp = Blueprint("sandbox", __name__)
ANY_METHOD = ["GET", "POST"]
DAY = 24 * 3600
# The CSV delimiters /results/ takes; any other gives the default ";" (Table 34).
DELIMITERS = (";", ",", ":", "/")
RESULTS_MANDATORY = ("Shop_ID", "Login", "Password", "Format")


def _sandbox():
    return current_app.extensions["sandbox"]


@bp.app_template_filter("comment")
def comment_text(text: str) -> Markup:
    """Escape a text for an HTML comment, keeping quotes as the spec prints them."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Markup(text)


def _fields() -> dict:
    """Return the request's parameters, query and form alike (first value wins)."""
    return request.values.to_dict()


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status, mimetype="text/plain")


def server_to_server(view):
    """Apply the injected latency and HTTP 500 faults to a server-to-server view."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        faults = _sandbox().faults
        if faults["latency_ms"]:
            time.sleep(faults["latency_ms"] / 1000)
        if faults.draw_server_error():
            return _text("Internal Server Error (fault injection)", 500)
        return view(*args, **kwargs)

    return wrapper


@bp.get("/ping")
def ping():
    """Answer the liveness probe."""
    return {"status": "pong"}


# -- the payment page -----------------------------------------------------------


@bp.route("/pay/", methods=ANY_METHOD, strict_slashes=False)
def pay():
    """Validate a pay request and show the card form."""
    sandbox = _sandbox()
    fields = _fields()
    try:
        validate_pay_request(fields, sandbox.shop, sandbox.mode)
    except MerchantError as error:
        return _message("Ошибка в запросе магазина", merchant_error=str(error))
    return _open_card_form(sandbox, fields)


@bp.route("/v2/pay", methods=ANY_METHOD, strict_slashes=False)
def pay_fiscal():
    """Validate a pay request with its Receipt (fiscal 02.1.18 §3.1), show the form."""
    sandbox = _sandbox()
    fields = _fields()
    try:
        validate_fiscal_pay_request(
            fields, sandbox.shop, sandbox.earlier_receipts, sandbox.mode
        )
    except MerchantError as error:
        current_app.logger.info("/v2/pay refused: %s (%s)", error, error.detail)
        return _message(
            "Ошибка в запросе магазина",
            merchant_error=str(error),
            sandbox_detail=error.detail,
        )
    return _open_card_form(sandbox, fields, fiscal=True)


def _open_card_form(sandbox, fields: dict, fiscal: bool = False):
    if sandbox.order_locked(fields["Shop_IDP"], fields["Order_IDP"]):
        return _message("Данный заказ не может быть оплачен")
    token = sandbox.open_session(fields, fiscal=fiscal)
    return _card_form(sandbox.session(token))


@bp.post("/pay/card")
def pay_card():
    """Take the card form, decide the payment and send the payer back to the shop."""
    sandbox = _sandbox()
    token = request.form.get("token", "")
    session = sandbox.session(token)
    if session is None:
        return _message("Платёжная сессия не найдена"), 404
    card, problem = read_card(request.form, sandbox.mode)
    if card is None:
        return _card_form(session, problem)
    try:
        order = sandbox.pay_with_card(token, card, request.host_url)
    except PayPageError as error:
        return _message(str(error))
    return _return_to_shop(session["request"], order)


@bp.post("/pay/sbp")
def pay_sbp():
    """Take the bank app's confirmation of an SBP payment; back to the shop."""
    sandbox = _sandbox()
    token = request.form.get("token", "")
    session = sandbox.session(token)
    if session is None:
        return _message("Платёжная сессия не найдена"), 404
    try:
        order = sandbox.pay_with_sbp(token, request.host_url)
    except PayPageError as error:
        return _message(str(error))
    return _return_to_shop(session["request"], order)


def _sbp_qr(session: dict) -> Markup | None:
    """The QR code of an SBP payment as inline SVG, or None if SBP is not allowed."""
    fields = session["request"]
    if SBP not in (parse_payment_types(fields.get("PaymentTypeLimits", "")) or ()):
        return None
    payload = sbp_payload(session["order_id"], parse_amount(fields["Subtotal_P"]))
    qr = segno.make(payload, error="m")
    return Markup(qr.svg_inline(scale=4, title="QR СБП"))


def _card_form(session: dict, problem: str = ""):
    fields = session["request"]
    spec = _sandbox().mode == "spec"
    types = parse_payment_types(fields.get("PaymentTypeLimits", "")) or ()
    return render_template(
        "pay_form.html",
        token=session["token"],
        shop_id=session["shop_id"],
        order_id=session["order_id"],
        amount=format_amount(parse_amount(fields["Subtotal_P"])),
        currency=fields.get("Currency") or "RUB",
        spec=spec,
        success_cards=sorted(bank.SUCCESS_CARDS),
        decline_cards=[bank.SPEC_DECLINE_CARD] if spec else sorted(bank.DECLINE_CARDS),
        amount_bands=bank.AMOUNT_BANDS_TEXT,
        problem=problem,
        card=CARD in types,
        sbp_qr=_sbp_qr(session),
    )


def _message(
    text: str, merchant_error: str = "", link: str = "", sandbox_detail: str = ""
):
    return render_template(
        "message.html",
        text=text,
        merchant_error=merchant_error,
        sandbox_detail=sandbox_detail,
        link=link,
    )


def _return_to_shop(fields: dict, order: dict):
    """Redirect to URL_RETURN_OK/_NO (or URL_RETURN) with Order_ID appended.

    A payment reversed because its receipt failed (fiscal 02.1.18 §2.1.2,
    8.3.1) is a failure.
    """
    succeeded = order["status"] not in ("not authorized", "canceled")
    url = fields.get("URL_RETURN_OK" if succeeded else "URL_RETURN_NO")
    url = url or fields.get("URL_RETURN")
    if url:
        return redirect(with_order_id(url, order["order_id"]))
    # Only URL_RETURN_OK was sent and the payment failed: say so here.
    message = bank.RESPONSES[order["response_code"]][0]
    if order["status"] == "canceled":
        message = "не удалось сформировать чек, платёж отменён"
    back = with_order_id(fields["URL_RETURN_OK"], order["order_id"])
    return _message(f"Платёж отклонён: {message}", link=back)


def with_order_id(url: str, order_id: str) -> str:
    """Append Order_ID=<order_id> to a URL's query, keeping what is there."""
    parts = urlsplit(url)
    extra = urlencode({"Order_ID": order_id})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


# -- server to server -----------------------------------------------------------


def paced(view):
    """Give a /results/ request its turn per shop and IP; 429 if it did not come."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        fields = _fields()
        if not fields.get("Shop_ID"):
            return view(*args, **kwargs)
        pacer = _sandbox().results_pacer
        order_id = fields.get("ShopOrderNumber") or None
        try:
            with pacer.turn(fields["Shop_ID"], request.remote_addr or "", order_id):
                return view(*args, **kwargs)
        except TooManyRequests:
            return _text("Too Many Connections", 429)

    return wrapper


@bp.route("/results/", methods=ANY_METHOD, strict_slashes=False)
@paced
@server_to_server
def results():
    """Report order results as CSV or XML."""
    try:
        body, mimetype = _results(_sandbox(), _fields())
    except ValueError as error:
        return _text(f"ERROR: {error}")
    return Response(body, mimetype=mimetype)


@bp.route("/v2/results", methods=ANY_METHOD, strict_slashes=False)
@paced
@server_to_server
def results_fiscal():
    """Report order results with their fiscalized receipts (fiscal 02.1.18 §3.16)."""
    try:
        body, mimetype = _results(_sandbox(), _fields(), fiscal=True)
    except ValueError as error:
        return _text(f"ERROR: {error}")
    return Response(body, mimetype=mimetype)


def _results(sandbox, fields: dict, fiscal: bool = False) -> tuple[str, str]:
    for name in RESULTS_MANDATORY:
        if not fields.get(name):
            raise ValueError(
                f"Mandatory parameter {name} is not present in the request"
            )
    if (
        sandbox.authenticate(fields["Shop_ID"], fields["Login"], fields["Password"])
        is None
    ):
        raise ValueError("Authentication error")
    fmt = fields["Format"]
    if fmt not in ("1", "2", "3", "4", "5"):
        raise ValueError("Format must be a number from 1 to 5")
    if fmt not in ("1", "4"):
        raise ValueError(f"Format {fmt} is not supported by the sandbox (1 or 4)")
    if any(name.endswith("OfChange") for name in fields):
        raise ValueError("The period of change is not supported by the sandbox")
    if "ShopOrderNumber" in fields and not fields["ShopOrderNumber"]:
        raise ValueError("ShopOrderNumber must not be empty")
    names = _columns(
        fields, lambda name: ValueError(f"Unknown field {name} in S_FIELDS")
    )
    if fiscal and "Receipt" not in names:
        # A mandatory field of the fiscal results (§3.16): last unless named.
        names.append("Receipt")
    period = parse_period(fields, sandbox.tz)
    order_id = fields.get("ShopOrderNumber") or None
    if period is None and order_id is None:
        now = time.time()
        period = (now - DAY, now)
    success = _choice(fields, "Success", "2", "012")
    orders = sandbox.find_orders(
        fields["Shop_ID"],
        order_id,
        period,
        success=success,
        mode=_choice(fields, "PaymentsResults", "0", "0123"),
        show_partly_canceled=fields.get("ShowPartlyCanceled") == "1",
    )
    if fiscal:
        orders = [_with_receipts(sandbox, order) for order in orders]
    delimiter = fields.get("Delimiter", ";")
    delimiter = delimiter if delimiter in DELIMITERS else ";"
    if fmt == "4":
        echo = _request_block(fields, period, sandbox.tz, delimiter, success)
        return render_results_xml(orders, names, sandbox.tz, echo), "text/xml"
    header = fields.get("Header1") == "1"
    return render_csv(orders, names, sandbox.tz, header, delimiter), "text/plain"


def _with_receipts(sandbox, order: dict) -> dict:
    """Attach a results row's receipts: the order's, or a refund row's own."""
    bodies = sandbox.receipts_of(order["id"], order.get("refund_id"))
    return {**order, "fiscal_receipt": cashbox.as_array(bodies)}


def _request_block(fields, period, tz, delimiter, success) -> dict:
    """Echo a /results/ query in the XML answer's <request> block (§8.3.1.5)."""
    start, end = period or (None, None)
    return {
        "zipflag": fields.get("ZipFlag") or "0",
        "shopordernumber": fields.get("ShopOrderNumber", ""),
        "shop_id": fields["Shop_ID"],
        "format": fields["Format"],
        "delimiter": delimiter,
        "opendelimiter": fields.get("OpenDelimiter") or "[",
        "closedelimiter": fields.get("CloseDelimiter") or "]",
        "rowdelimiter": fields.get("RowDelimiter") or "13,10",
        "meantype": fields.get("MeanType", ""),
        "emoneytype": fields.get("EMoneyType", ""),
        "startdate": format_time(start, tz),
        "enddate": format_time(end, tz),
        "success": str(success),
    }


def _columns(fields: dict, unknown) -> list[str]:
    """Return the S_FIELDS columns, or the default ones; `unknown` builds the error."""
    if not fields.get("S_FIELDS"):
        return list(ANSWER_COLUMNS)
    try:
        return parse_field_list(fields["S_FIELDS"])
    except ValueError as error:
        raise unknown(str(error)) from None


def _choice(fields: dict, name: str, default: str, allowed: str) -> int:
    value = fields.get(name) or default
    if len(value) != 1 or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}")
    return int(value)


@bp.route("/recurrent/", methods=ANY_METHOD, strict_slashes=False)
@server_to_server
def recurrent():
    """Charge a parent order's card again."""
    return _recurrent(fiscal=False)


@bp.route("/v2/recurrent", methods=ANY_METHOD, strict_slashes=False)
@server_to_server
def recurrent_fiscal():
    """Charge a parent order's card again with a receipt (fiscal 02.1.18 §3.6)."""
    return _recurrent(fiscal=True)


def _recurrent(fiscal: bool):
    sandbox = _sandbox()
    try:
        order = sandbox.recurrent(_fields(), fiscal, request.host_url)
    except OperationError as error:
        return _text(render_error(error.code, error.text))
    password = sandbox.shop(order["shop_id"])["password"]
    total = format_amount(order["amount"])
    signature = recurrent_answer_signature(order["order_id"], total, password)
    receipt = None
    if fiscal:
        receipt = cashbox.as_array(sandbox.receipts_of(order["id"]))
    return _text(render_signed_answer(order, sandbox.tz, signature, receipt))


@bp.route("/v2/cancel", methods=ANY_METHOD, strict_slashes=False)
@server_to_server
def cancel_fiscal():
    """Refund a payment with its refund receipt; answer JSON (§3.14)."""
    try:
        order, bodies = _sandbox().cancel_fiscal(_fields())
    except FiscalOperationError as error:
        if error.detail:
            current_app.logger.info("/v2/cancel refused: %s", error.detail)
        return jsonify(fiscal_answer(error.code, error.note, error.order, error.bodies))
    return jsonify(fiscal_answer(0, "OK", order, bodies))


@bp.get("/receipt")
def receipt_page():
    """Show a fiscalized receipt at its check link, as an OFD's receipt view."""
    args = request.args
    row = _sandbox().find_receipt(
        args.get("fn", ""), args.get("i", ""), args.get("fp", "")
    )
    if row is None:
        abort(404)
    return render_template("receipt.html", **receipt_view(cashbox.parse(row["body"])))


@bp.route("/unblock/", methods=ANY_METHOD, strict_slashes=False)
@server_to_server
def unblock():
    """Reverse or refund a payment by its BillNumber."""
    return _operation(_sandbox().unblock)


@bp.route("/confirm/", methods=ANY_METHOD, strict_slashes=False)
@server_to_server
def confirm():
    """Capture a preauthorized payment by its BillNumber."""
    return _operation(_sandbox().confirm)


def _operation(run):
    """Authenticate, validate Format and S_FIELDS, run, answer CSV or XML."""
    sandbox = _sandbox()
    fields = _fields()
    fmt = fields.get("Format") or "1"
    try:
        shop = sandbox.authenticate_operation(fields)
        if fmt not in ("1", "3"):
            raise OperationError(5, "Field Format has bad format")
        names = _columns(
            fields,
            lambda name: OperationError(
                10, f"S_FIELDS contains field '{name}' which is not allowed"
            ),
        )
        order = run(shop, fields)
    except OperationError as error:
        # Format=3 refuses in XML, with the code and text as attributes (§8.3.2.3).
        if fmt == "3":
            body = render_operation_xml_error(error.code, error.text)
            return Response(body, mimetype="text/xml")
        return _text(render_error(error.code, error.text))
    if fmt == "3":
        body = render_operation_xml([order], names, sandbox.tz)
        return Response(body, mimetype="text/xml")
    return _text(render_csv([order], names, sandbox.tz, header=True))


# The names a receipt prints (fiscal 02.1.18 Appendices 4-6).
VAT_NAMES = {
    -1: "Без НДС",
    0: "НДС 0%",
    5: "НДС 5%",
    7: "НДС 7%",
    10: "НДС 10%",
    22: "НДС 22%",
    105: "НДС 5/105",
    107: "НДС 7/107",
    110: "НДС 10/110",
    122: "НДС 22/122",
}
TAXMODE_NAMES = {0: "ОСН", 1: "УСН доход", 2: "УСН доход − расход", 4: "ЕСХН", 5: "ПСН"}
PAYATTR_NAMES = {
    1: "Предоплата 100%",
    2: "Предоплата",
    3: "Аванс",
    4: "Полный расчёт",
    5: "Частичный расчёт и кредит",
    6: "Передача в кредит",
    7: "Оплата кредита",
}


def _money(value) -> str:
    return f"{value:.2f}"


def _masked(contact: str) -> str:
    """Hide most of an e-mail or a phone: the page is open to whoever has the link."""
    name, at, domain = contact.partition("@")
    if at:
        return f"{name[:2]}***@{domain}"
    return contact[:-4].translate(str.maketrans("0123456789", "*" * 10)) + contact[-4:]


def receipt_view(receipt: dict) -> dict:
    """Return what the receipt page shows of a fiscalized receipt."""
    fiscal = receipt["fiscal"]
    register = fiscal["register"]
    customer = receipt.get("customer", {})
    contact = customer.get("email") or customer.get("phone") or ""
    paid = sum((p["amount"] for p in receipt["payments"] if p["kind"] in (1, 2, 3)), 0)
    return {
        "title": cashbox.TYPE_NAMES[fiscal["type"]],
        "fiscal": fiscal,
        "register": register,
        "place": receipt.get("params", {}).get("place", ""),
        "lines": [
            {
                "name": line["name"],
                "qty": line["qty"],
                "price": _money(line["price"]),
                "sum": _money(line["sum"]),
                "vat": VAT_NAMES.get(line["vat"], line["vat"]),
                "payattr": PAYATTR_NAMES.get(line["payattr"], line["payattr"]),
            }
            for line in receipt["lines"]
        ],
        "total": _money(receipt["total"]),
        "electronic": _money(paid),
        "taxmode": TAXMODE_NAMES.get(receipt["taxmode"], receipt["taxmode"]),
        "contact": _masked(contact) if contact else "",
        "correction": receipt.get("causeDocumentNumber", ""),
    }
