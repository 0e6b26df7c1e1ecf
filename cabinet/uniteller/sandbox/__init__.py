"""A local emulator of Uniteller's server (the sandbox), its own Flask app.

It follows Uniteller's specifications (v1.43, and "Платежи с фискализацией"
02.1.18 for the /v2/ endpoints); what it decides where they are silent, and how
its two modes differ, is in docs/sandbox.md.

Settings: keys of the config dict given to `create_app`, else environment
variables of the same name, else the default.

SANDBOX_DATABASE = instance/sandbox.sqlite3
    the sandbox's SQLite file (a path, relative to the current directory)
SANDBOX_MODE = demo
    demo: the sandbox's own rules (test cards with any future expiry, any
    holder and CVC, amount bands deciding declines, no amount limit);
    spec: Uniteller's virtual acquirer (v1.43 §3.3): its six test cards and one
    decline card, expiry 01/35, holder UNITELLER TEST, CVV 123, 10.00-100.00
SANDBOX_TIME_SCALE = 1.0
    multiplies every delay: callback retries, delayed success, capture,
    status check, the /results/ hold (tests use 0.001)
SANDBOX_RESULTS_INTERVAL = 5
    seconds between /results/ requests per shop and client IP (not scaled)
SANDBOX_RESULTS_HOLD_SECONDS = 100
    how long a /results/ request over a limit waits for its turn before HTTP 429
SANDBOX_DELAYED_SUCCESS_SECONDS = 110
    delay of the success of the 3000.01-5000.00 amount band (demo mode)
SANDBOX_CAPTURE_DELAY = 2
    seconds from the authorized to the paid status (and callback)
SANDBOX_STATUS_CHECK_DELAY = 600
    seconds from authorization to the request to status_url; <= 0 is off
SANDBOX_STATUS_CHECK_JITTER = 300
    up to this many seconds more, at random, before that request
SANDBOX_TIMEZONE = Europe/Moscow
    timezone of /results/ dates and periods and of the recurrent "day"
SANDBOX_SHOPS_FILE = (none)
    JSON file: a list of shop objects with add_shop's keys, loaded at start
SANDBOX_PUBLIC_URL = (the request's)
    the sandbox's address in receipts' check links (else the address the
    request that made the order came to)

The emulated ISP billing (billing.py) answers at /billing/ (OSMP, webhooks),
with settings SANDBOX_BILLING_LOGIN (cabinet), SANDBOX_BILLING_PASSWORD and
SANDBOX_BILLING_WEBHOOK_SECRET (random when not set).

Endpoints: /pay/ (card form, POST /pay/card), /results/, /recurrent/,
/unblock/, /confirm/, /ping; the fiscal ones /v2/pay, /v2/recurrent, /v2/cancel,
/v2/results and the receipt page /receipt?fn=&i=&fp= (its check link);
operator view at / and /_sandbox/; control API:
GET|POST /_sandbox/shops, GET|POST|DELETE /_sandbox/faults,
GET /_sandbox/orders[?shop_id=&order_id=],
POST /_sandbox/orders/<Order_IDP>/expire-card|block-card[?shop_id=].

Faults (POST JSON to /_sandbox/faults to merge, DELETE to reset; in memory):
    drop_callbacks (bool)        record callbacks as dropped, never send them
    callback_http_errors (int N) first N tries of each callback fail as an
                                 "injected HTTP 503" without being sent
    duplicate_callbacks (int N)  send every try N times at once
    reorder_callbacks (bool)     send "paid" before "authorized"
    latency_ms (number)          delay /results/, /recurrent/, /unblock/, /confirm/
    error_rate (0..1), seed      answer that share of them HTTP 500 (seeded RNG)
    operation_failed (bool)      /recurrent/, /unblock/, /confirm/ answer error 15
                                 (/v2/recurrent too; /v2/cancel Code 01)
    fail_sale_receipts (int N)   the next N sale receipts fail: reversed (53)
                                 with the shop's fiscal_protection, else kept (54)
    fail_sale_receipts_kept (N)  the next N fail and the payment is kept (54)
    fail_refund_receipts (N)     the next N refund receipts fail (50)
    fail_refunds_after_receipt (N) the next N refunds fail after their receipt:
                                 a correction receipt is issued (51)
    drop_fiscal_notifications (bool), fiscal_notification_delay_ms (number)

Python API:
    app = create_app({"SANDBOX_DATABASE": path, "SANDBOX_TIME_SCALE": 0.001})
    add_shop(app, "00000001", password="secret", login="1",
             notify_url="http://...", status_url="", callback_fields="BillNumber",
             recurrent_allowed=True, partial_refund_allowed=True,
             notify_balance=False,  # True: partial refunds call back
                                    # "partly canceled"
             fiscal=False,          # the cash register is set up (/v2/)
             fiscal_notify_url="",  # where fiscal notifications go
             fiscal_protection=True)  # a failed sale receipt reverses (53)
    wait_idle(app, timeout=10)  # True once no callback or task is pending
    app.extensions["sandbox"]   # the Sandbox: .faults, .store, .close()
    testing.serve_in_thread(app) -> server with .url and .shutdown()
Command line:
    python -m cabinet.uniteller.sandbox [--host 127.0.0.1] [--port 5001]
    flask --app cabinet.uniteller.sandbox shop add ID --password P --login L \
        --notify-url U [--status-url U] [--callback-fields "BillNumber Total"] \
        [--notify-balance] [--fiscal] [--fiscal-notify-url U] \
        [--no-fiscal-protection]
    flask --app cabinet.uniteller.sandbox shop list
"""

import json
from pathlib import Path

from flask import Flask

from . import cli, control, views
from .billing import init_billing
from .engine import Sandbox
from .settings import load_settings


def create_app(config: dict | None = None) -> Flask:
    """Create the sandbox app and start its delivery worker."""
    settings = load_settings(config)
    app = Flask(__name__)
    app.config.update(config or {})
    app.config.update(settings)
    sandbox = Sandbox(settings)
    app.extensions["sandbox"] = sandbox
    if settings["SANDBOX_SHOPS_FILE"]:
        load_shops_file(sandbox, settings["SANDBOX_SHOPS_FILE"])
    app.register_blueprint(views.bp)
    app.register_blueprint(control.bp)
    init_billing(app)
    app.cli.add_command(cli.shop_cli)
    sandbox.start()
    return app


def load_shops_file(sandbox: Sandbox, path: str) -> None:
    """Add every shop of a JSON file: a list of objects with add_shop's keys."""
    for shop in json.loads(Path(path).read_text(encoding="utf-8")):
        shop = dict(shop)
        sandbox.add_shop(shop.pop("shop_id"), **shop)


def add_shop(app: Flask, shop_id: str, **fields) -> None:
    """Add or replace a shop of the sandbox app (see Sandbox.add_shop)."""
    app.extensions["sandbox"].add_shop(shop_id, **fields)


def wait_idle(app: Flask, timeout: float = 10) -> bool:
    """Wait until the sandbox has nothing pending; False if the timeout ran out."""
    return app.extensions["sandbox"].wait_idle(timeout)
