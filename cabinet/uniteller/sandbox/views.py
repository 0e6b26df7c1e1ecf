"""Serve what Uniteller serves: the payment page and the server-to-server API."""

import functools
import time
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, redirect, render_template, request

from . import bank
from .engine import OperationError, PayPageError
from .pacing import TooManyRequests
from .paypage import MerchantError, read_card, validate_pay_request
from .signatures import recurrent_answer_signature
from .wire import (
    ANSWER_COLUMNS,
    format_amount,
    format_time,
    parse_amount,
    parse_field_list,
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
    if sandbox.order_locked(fields["Shop_IDP"], fields["Order_IDP"]):
        return _message("Данный заказ не может быть оплачен")
    token = sandbox.open_session(fields)
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
        order = sandbox.pay_with_card(token, card)
    except PayPageError as error:
        return _message(str(error))
    return _return_to_shop(session["request"], order)


def _card_form(session: dict, problem: str = ""):
    fields = session["request"]
    spec = _sandbox().mode == "spec"
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
    )


def _message(text: str, merchant_error: str = "", link: str = ""):
    return render_template(
        "message.html", text=text, merchant_error=merchant_error, link=link
    )


def _return_to_shop(fields: dict, order: dict):
    """Redirect to URL_RETURN_OK/_NO (or URL_RETURN) with Order_ID appended."""
    succeeded = order["status"] != "not authorized"
    url = fields.get("URL_RETURN_OK" if succeeded else "URL_RETURN_NO")
    url = url or fields.get("URL_RETURN")
    if url:
        return redirect(with_order_id(url, order["order_id"]))
    # Only URL_RETURN_OK was sent and the payment failed: say so here.
    message = bank.RESPONSES[order["response_code"]][0]
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


def _results(sandbox, fields: dict) -> tuple[str, str]:
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
    delimiter = fields.get("Delimiter", ";")
    delimiter = delimiter if delimiter in DELIMITERS else ";"
    if fmt == "4":
        echo = _request_block(fields, period, sandbox.tz, delimiter, success)
        return render_results_xml(orders, names, sandbox.tz, echo), "text/xml"
    header = fields.get("Header1") == "1"
    return render_csv(orders, names, sandbox.tz, header, delimiter), "text/plain"


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
    sandbox = _sandbox()
    try:
        order = sandbox.recurrent(_fields())
    except OperationError as error:
        return _text(render_error(error.code, error.text))
    password = sandbox.shop(order["shop_id"])["password"]
    total = format_amount(order["amount"])
    signature = recurrent_answer_signature(order["order_id"], total, password)
    return _text(render_signed_answer(order, sandbox.tz, signature))


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
