"""An emulated ISP billing: OSMP check/pay/cancel and a Standard Webhooks receiver.

Its own blueprint and state (in memory): the sandbox app serves it under
/billing/, and `create_billing_app` serves it alone (tests stop and restart it
to play a billing that is down).

    GET|POST /billing/osmp         command=check|pay|cancel (HTTP Basic auth)
    POST     /billing/webhook      a Standard Webhooks event, signature verified
    GET      /billing/             what it received (a page)
    GET      /billing/_state       the same as JSON
    GET|POST|DELETE /billing/_faults   fault knobs (JSON), as the sandbox's:
        temporary (int N)    the next N check/pay answer result 1
        final_result (int)   check and pay answer this result (5, 7, 300 …)
        refuse_accounts      a list of accounts answered 5 (not found)
        delay_ms (number)    wait before answering (a time-out to the caller)
        down (bool)          answer HTTP 503 to everything but the control API
        balances             {account: "123.45"}: check answers it in
                             <account_balance>, as BGBilling's OSMP module does
"""

import base64
import secrets
import threading
import time
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

bp = Blueprint("billing", __name__, url_prefix="/billing")
FAULT_KEYS = {
    "temporary",
    "final_result",
    "refuse_accounts",
    "delay_ms",
    "down",
    "balances",
}


class EmulatedBilling:
    """The billing's books: payments by txn_id, webhooks by id, every request."""

    def __init__(self, login="cabinet", password="", webhook_secret=""):
        self.lock = threading.Lock()
        self.login = login
        self.password = password or secrets.token_urlsafe(12)
        self.webhook_secret = webhook_secret or (
            "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        )
        self.reset()

    def reset(self):
        """Forget every payment, webhook, request and fault."""
        with self.lock:
            self.payments = {}  # txn_id -> payment
            self.webhooks = {}  # webhook-id -> event
            self.requests = []  # (time, command, txn_id, result)
            self.faults = {}
            self.next_prv = 1000

    def set_faults(self, faults):
        unknown = set(faults) - FAULT_KEYS
        if unknown:
            raise ValueError(f"unknown faults: {', '.join(sorted(unknown))}")
        with self.lock:
            self.faults.update(faults)

    def _note(self, command, txn_id, result):
        self.requests.append((time.time(), command, txn_id, result))

    def osmp(self, args):
        """Answer one OSMP command: (result, extra fields, comment)."""
        command = args.get("command", "")
        txn_id = args.get("txn_id", "")
        account = args.get("account", "")
        with self.lock:
            faults = self.faults
            if command in ("check", "pay") and faults.get("temporary", 0) > 0:
                faults["temporary"] -= 1
                self._note(command, txn_id, 1)
                return 1, {}, "temporary error, try later"
            if command in ("check", "pay") and faults.get("final_result"):
                code = int(faults["final_result"])
                self._note(command, txn_id, code)
                return code, {}, "refused"
            if command in ("check", "pay") and account in faults.get(
                "refuse_accounts", ()
            ):
                self._note(command, txn_id, 5)
                return 5, {}, "account not found"
            if not txn_id.isdigit() or len(txn_id) > 20:
                self._note(command, txn_id, 300)
                return 300, {}, "bad txn_id"
            if command == "check":
                self._note(command, txn_id, 0)
                balance = faults.get("balances", {}).get(account)
                return 0, {"account_balance": balance} if balance else {}, "OK"
            if command == "pay":
                payment = self.payments.get(txn_id)
                if payment is None:
                    payment = {
                        "txn_id": txn_id,
                        "prv_txn": str(self.next_prv),
                        "account": account,
                        "sum": args.get("sum", ""),
                        "txn_date": args.get("txn_date", ""),
                        "canceled": False,
                        "repeats": 0,
                    }
                    self.next_prv += 1
                    self.payments[txn_id] = payment
                else:
                    payment["repeats"] += 1  # the same answer: counted once
                self._note(command, txn_id, 0)
                return (
                    0,
                    {"prv_txn": payment["prv_txn"], "sum": payment["sum"]},
                    "OK",
                )
            if command == "cancel":
                prv_txn = args.get("prv_txn", "")
                found = next(
                    (p for p in self.payments.values() if p["prv_txn"] == prv_txn),
                    None,
                )
                if found is None:
                    self._note(command, txn_id, 300)
                    return 300, {}, "no such payment"
                found["canceled"] = True
                self._note(command, txn_id, 0)
                return 0, {"prv_txn": prv_txn}, "canceled"
            self._note(command, txn_id, 300)
            return 300, {}, "unknown command"

    def webhook(self, body, headers):
        """Verify and keep one event; False if its signature does not verify."""
        try:
            event = Webhook(self.webhook_secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        message_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id")
        with self.lock:
            kept = self.webhooks.setdefault(message_id, {**event, "repeats": -1})
            kept["repeats"] += 1
        return True

    def state(self):
        """Everything received, for the page and the tests."""
        with self.lock:
            return {
                "payments": [dict(p) for p in self.payments.values()],
                "webhooks": {k: dict(v) for k, v in self.webhooks.items()},
                "requests": list(self.requests),
                "faults": dict(self.faults),
            }


def _billing():
    return current_app.extensions["billing"]


def _osmp_answer(txn_id, result, extra, comment):
    fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in extra.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<response>'
        f"<osmp_txn_id>{escape(txn_id)}</osmp_txn_id>{fields}"
        f"<result>{result}</result><comment>{escape(comment)}</comment></response>"
    )


@bp.before_request
def _downtime():
    faults = _billing().faults
    if request.endpoint == "billing.faults":
        return None
    if faults.get("delay_ms"):
        time.sleep(float(faults["delay_ms"]) / 1000)
    if faults.get("down"):
        return "billing down for maintenance", 503
    return None


@bp.route("/osmp", methods=["GET", "POST"])
def osmp():
    """Answer an OSMP check, pay or cancel (HTTP Basic auth)."""
    billing = _billing()
    auth = request.authorization
    if (
        auth is None
        or auth.username != billing.login
        or not secrets.compare_digest(auth.password or "", billing.password)
    ):
        return "authentication required", 401, {"WWW-Authenticate": "Basic"}
    args = request.values.to_dict()
    result, extra, comment = billing.osmp(args)
    answer = _osmp_answer(args.get("txn_id", ""), result, extra, comment)
    return answer, 200, {"Content-Type": "text/xml; charset=utf-8"}


@bp.post("/webhook")
def webhook():
    """Receive a Standard Webhooks event; 401 unless its signature verifies."""
    if not _billing().webhook(request.get_data(), dict(request.headers)):
        return "signature does not verify", 401
    return "", 204


@bp.get("/")
def overview():
    """List the payments and events the billing received."""
    state = _billing().state()
    return render_template(
        "billing.html",
        state=state,
        moment=lambda epoch: datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S"),
    )


@bp.get("/_state")
def state():
    """What the billing received, as JSON."""
    return jsonify(_billing().state())


@bp.route("/_faults", methods=["GET", "POST", "DELETE"])
def faults():
    """Show, merge into or reset the billing's faults."""
    billing = _billing()
    if request.method == "POST":
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return jsonify(error="the body must be a JSON object"), 400
        try:
            billing.set_faults(data)
        except ValueError as error:
            return jsonify(error=str(error)), 400
    elif request.method == "DELETE":
        with billing.lock:
            billing.faults = {}
    return jsonify(billing.state()["faults"])


def init_billing(app, billing=None):
    """Give an app the emulated billing (settings SANDBOX_BILLING_*)."""
    billing = billing or EmulatedBilling(
        app.config.get("SANDBOX_BILLING_LOGIN") or "cabinet",
        app.config.get("SANDBOX_BILLING_PASSWORD") or "",
        app.config.get("SANDBOX_BILLING_WEBHOOK_SECRET") or "",
    )
    app.extensions["billing"] = billing
    app.register_blueprint(bp)
    return billing


def create_billing_app(billing=None):
    """Serve an emulated billing alone (its state may outlive the app)."""
    app = Flask(__name__)
    init_billing(app, billing)
    return app
