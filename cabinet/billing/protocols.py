"""Speak to a billing: OSMP (check, pay, cancel) and Standard Webhooks."""

import base64
import hashlib
import hmac
import json
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC

import requests

from ..clock import local_timezone, utcnow
from ..money import AmountError, format_wire, to_kopecks

# OSMP result codes: 0 done, 1 try again later; every other code is final.
OSMP_OK = 0
OSMP_LATER = 1
MAX_ANSWER = 64 * 1024  # a billing's answer longer than this is not read
EVENT_OF = {
    "credit": "payment.credited",
    "reversal": "payment.reversed",
    "refund": "refund.completed",
}
KIND_OF_TRANSACTION = {"payment": "payment", "bind": "payment", "recurrent": "autopay"}


@dataclass
class Result:
    """What one call to a billing came to: done, retry (for now) or final."""

    outcome: str
    request: str  # what was asked, without credentials
    answer: str = ""
    prv_txn: str | None = None
    # The account's balance a check answered (BGBilling's <account_balance>), kopecks.
    balance: int | None = None


def send(connector, delivery):
    """Deliver one row to its connector's billing and say how it went."""
    if connector.kind == "webhook":
        return _webhook(connector, delivery)
    return _osmp_delivery(connector, delivery)


def probe(connector, account=None, amount=100, timeout=None):
    """Ask once without moving money: OSMP `check` of an account, or a ping event.

    `amount` (kopecks) is the sum the check names; `timeout` (seconds) caps the
    connector's own, for a caller a person waits on.
    """
    if connector.kind == "webhook":
        body = {"type": "ping", "timestamp": _iso(utcnow()), "data": {}}
        return _post_signed(connector, f"ping_{int(time.time() * 1000)}", body)
    if not account:
        raise ValueError("an account to check")
    fields = {
        "command": "check",
        "txn_id": "0",
        "account": account,
        "sum": format_wire(amount),
    }
    return _osmp(connector, fields, timeout)


# --- OSMP -----------------------------------------------------------------------


def _osmp_delivery(connector, delivery):
    params = connector.params
    if delivery.kind == "credit":
        fields = {
            "txn_id": delivery.txn_id,
            "account": delivery.account,
            "sum": format_wire(delivery.amount),
        }
        if params.get("check_first") == "yes":
            checked = _osmp(connector, {"command": "check", **fields})
            if checked.outcome != "done":
                return checked
        local = delivery.created_at.replace(tzinfo=UTC).astimezone(local_timezone())
        return _osmp(
            connector,
            {"command": "pay", **fields, "txn_date": local.strftime("%Y%m%d%H%M%S")},
        )
    # A reversal or a full refund: cancel the credit's payment at the billing.
    return _osmp(
        connector,
        {
            "command": "cancel",
            "txn_id": delivery.txn_id,
            "prv_txn": delivery.credit_prv_txn,
            "account": delivery.account,
            "sum": format_wire(delivery.amount),
        },
    )


def _osmp(connector, fields, timeout=None):
    """Send one OSMP command; read `result` (0 done, 1 retry, else final)."""
    params = connector.params
    seconds = float(params["timeout"])
    seconds = min(seconds, timeout) if timeout else seconds
    request = " ".join(f"{k}={v}" for k, v in fields.items())
    auth = (params["login"], params["password"]) if params.get("login") else None
    try:
        answer = requests.get(
            params["url"],
            params=fields,
            auth=auth,
            timeout=seconds,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return Result("retry", request, f"no answer: {type(exc).__name__}")
    text = answer.text[:MAX_ANSWER]
    if answer.status_code >= 500 or answer.status_code in (408, 429):
        return Result("retry", request, f"HTTP {answer.status_code}: {text[:500]}")
    if answer.status_code != 200:
        return Result("final", request, f"HTTP {answer.status_code}: {text[:500]}")
    parsed = parse_osmp(text)
    if parsed is None:
        # Unreadable: whether it paid is unknown; the same txn_id is safe to resend.
        return Result("retry", request, f"unreadable answer: {text[:500]}")
    result, prv_txn, comment, balance = parsed
    shown = f"result {result}" + (f" prv_txn {prv_txn}" if prv_txn else "")
    shown += f": {comment}" if comment else ""
    if result == OSMP_OK:
        return Result("done", request, shown, prv_txn, balance)
    if result == OSMP_LATER:
        return Result("retry", request, shown)
    return Result("final", request, shown)


def parse_osmp(text):
    """Read (result, prv_txn, comment, balance in kopecks or None) from an OSMP
    answer; None if unreadable."""
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        return None  # no entity expansion from a billing's answer
    try:
        root = ET.fromstring(text.strip())
        result = int((root.findtext("result") or "").strip())
    except (ET.ParseError, ValueError):
        return None
    prv_txn = (root.findtext("prv_txn") or "").strip() or None
    comment = (root.findtext("comment") or "").strip()[:300]
    try:
        balance = to_kopecks((root.findtext("account_balance") or "").strip())
    except AmountError:  # absent, or not an amount: no balance, the answer stands
        balance = None
    return result, prv_txn, comment, balance


# --- Standard Webhooks ------------------------------------------------------------


def _iso(moment):
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def webhook_body(delivery):
    """Build a delivery's event: type, timestamp and its data (amounts as strings)."""
    transaction = delivery.transaction
    return {
        "type": EVENT_OF[delivery.kind],
        "timestamp": _iso(delivery.created_at),
        "data": {
            "delivery_id": delivery.txn_id,
            "contract": delivery.account,
            "amount": format_wire(delivery.amount),
            "currency": "RUB",
            "order_id": transaction.order_id,
            "bill_number": transaction.bill_number,
            "kind": KIND_OF_TRANSACTION.get(transaction.kind, transaction.kind),
            "refund_id": delivery.refund_id,
            "created_at": _iso(delivery.created_at),
            "paid_at": _iso(transaction.created_at),
        },
    }


def _webhook(connector, delivery):
    return _post_signed(connector, f"msg_{delivery.txn_id}", webhook_body(delivery))


def sign(secret, message_id, timestamp, body):
    """Sign as Standard Webhooks does: v1,base64(HMAC-SHA256 of id.timestamp.body)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _post_signed(connector, message_id, body):
    """POST a signed event; 2xx done, 5xx/408/429/no answer retry, other final."""
    params = connector.params
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    request = f"POST {body['type']} webhook-id={message_id}"
    try:
        answer = requests.post(
            params["url"],
            data=raw,
            headers={
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": sign(params["secret"], message_id, timestamp, raw),
            },
            timeout=float(params["timeout"]),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return Result("retry", request, f"no answer: {type(exc).__name__}")
    shown = f"HTTP {answer.status_code}: {answer.text[:300]}"
    if 200 <= answer.status_code < 300:
        return Result("done", request, shown)
    if answer.status_code >= 500 or answer.status_code in (408, 429):
        return Result("retry", request, shown)
    return Result("final", request, shown)
