"""Run the emulated Uniteller: shops, orders, operations, callbacks, the queue."""

import hashlib
import json
import logging
import random
import re
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from . import bank, cashbox, delivery, receipts
from .faults import Faults
from .pacing import ResultsPacer
from .signatures import (
    callback_signature,
    cancel_signature,
    fiscal_callback_signature,
    fiscal_receipt_signature,
    receipt_signature,
    recurrent_signature,
    same,
)
from .store import Store
from .wire import (
    CARD,
    FIELDS,
    NOT_FOR_SBP,
    SBP,
    STATUS_NAMES,
    format_amount,
    parse_amount,
    parse_payment_types,
    valid_callback_fields,
)

log = logging.getLogger(__name__)

# The card_state of a parent SBP order whose account the payer unbound.
REVOKED = "revoked"

# Gaps between the 10 delivery tries of a callback: 12 600 s = 3.5 hours in all.
RETRY_GAPS = (60, 120, 300, 600, 900, 1500, 2100, 3000, 4020)
# A status request without a valid answer is asked again this many times, this
# many seconds apart, before it counts as NEW (v1.43 §4.7.1 gives neither number).
STATUS_CHECK_RETRIES = 3
STATUS_CHECK_RETRY_GAP = 300
CONFIRM_DEADLINE = 5 * 24 * 3600
FAILED_RECURRENT_PER_DAY = 2
SUCCESSFUL = ("authorized", "paid", "canceled")
# An order id in one of these states cannot be paid again.
LOCKED = ("waiting", *SUCCESSFUL)
RECURRENT_START_VALUES = ("1", "2", "3")
RECURRENT_TYPES = ("1", "2", "3")
# Where receipt links point when neither SANDBOX_PUBLIC_URL nor the request
# that made the order says (make run's address).
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5001"
# orders.receipt_state of a fiscal order: its sale receipt registered, failed with
# the payment kept (54), failed with the payment reversed (53).
FISCALIZED = "fiscalized"
RECEIPT_FAILED = "failed"
REVERSED = "reversed"
# A /v2/cancel amount: whole roubles or one or two decimals, 0 allowed (§3.14:
# Subtotal=0 cancels only a merchant's means).
CANCEL_AMOUNT = re.compile(r"\d+(\.\d{1,2})?")


SHOP_FLAGS = (
    "recurrent_allowed",
    "partial_refund_allowed",
    "notify_balance",
    "fiscal",
    "fiscal_protection",
)


class OperationError(Exception):
    """A server-to-server refusal: ErrorCode;ErrorMessage."""

    def __init__(self, code: int, text: str):
        super().__init__(f"{code};{text}")
        self.code = code
        self.text = text


class FiscalOperationError(Exception):
    """A /v2/cancel refusal: its two-digit Code, Note and what it leaves behind."""

    def __init__(self, code: int, note: str, order=None, bodies=(), detail=""):
        super().__init__(f"{code:02d};{note}")
        self.code = code
        self.note = note
        self.order = order
        self.bodies = list(bodies)
        self.detail = detail


class PayPageError(Exception):
    """A card form submission that cannot go on; the text is shown to the payer."""


@dataclass(frozen=True)
class Card:
    """What the payer typed: the number lives only as long as the request."""

    number: str
    exp_month: int
    exp_year: int
    holder: str
    # Judged in spec mode, never stored or shown.
    cvc: str = field(default="", repr=False)


class Sandbox:
    """The emulator's state and behaviour, shared by views, CLI and worker."""

    def __init__(self, settings: dict):
        self.settings = settings
        self.mode = settings["SANDBOX_MODE"]
        self.tz = ZoneInfo(settings["SANDBOX_TIMEZONE"])
        self.store = Store(settings["SANDBOX_DATABASE"])
        self.faults = Faults()
        self.worker = delivery.Worker(self)
        self.results_pacer = ResultsPacer(
            settings["SANDBOX_RESULTS_INTERVAL"],
            self.scaled(settings["SANDBOX_RESULTS_HOLD_SECONDS"]),
        )

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery worker; pending tasks from a previous run resume."""
        self.worker.start()

    def stop(self) -> None:
        """Stop the delivery worker (tasks stay queued in the database)."""
        self.worker.stop()

    def close(self) -> None:
        """Stop the worker and close the database."""
        self.stop()
        self.store.close()

    def wait_idle(self, timeout: float = 10) -> bool:
        """Wait until no task is pending; return False if the timeout ran out."""
        deadline = time.monotonic() + timeout
        while True:
            pending = self.store.one("SELECT COUNT(*) AS n FROM tasks WHERE done = 0")
            if pending["n"] == 0 and not self.worker.busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)

    def scaled(self, seconds: float) -> float:
        """Scale a delay by SANDBOX_TIME_SCALE."""
        return seconds * self.settings["SANDBOX_TIME_SCALE"]

    def today(self) -> date:
        """Return today's date in the sandbox timezone."""
        return datetime.now(self.tz).date()

    # -- shops -----------------------------------------------------------------

    def add_shop(
        self,
        shop_id: str,
        *,
        password: str,
        login: str,
        notify_url: str = "",
        status_url: str = "",
        callback_fields: str = "",
        recurrent_allowed: bool = True,
        partial_refund_allowed: bool = True,
        notify_balance: bool = False,
        fiscal: bool = False,
        fiscal_notify_url: str = "",
        fiscal_protection: bool = True,
    ) -> None:
        """Add a shop or replace the one with this id.

        notify_balance is the merchant cabinet's "notify about balance changes"
        flag: a partial refund's callback says `partly canceled`. fiscal is the
        upoint's cash register settings (fiscal 02.1.18 §1.5: off, the fiscal
        endpoints answer error 5), fiscal_notify_url the address of its fiscal
        notifications (§1.2.11), fiscal_protection its "protection from fines"
        (§1.2.6: a sale whose receipt fails is reversed, else kept).
        """
        if not (shop_id and password and login):
            raise ValueError("shop_id, password and login are required")
        if not valid_callback_fields(callback_fields):
            raise ValueError(f"callback_fields has an unknown name: {callback_fields}")
        self.store.run(
            "INSERT INTO shops (shop_id, password, login, notify_url, status_url,"
            " callback_fields, recurrent_allowed, partial_refund_allowed,"
            " notify_balance, fiscal, fiscal_notify_url, fiscal_protection)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (shop_id) DO UPDATE SET"
            " password = excluded.password, login = excluded.login,"
            " notify_url = excluded.notify_url, status_url = excluded.status_url,"
            " callback_fields = excluded.callback_fields,"
            " recurrent_allowed = excluded.recurrent_allowed,"
            " partial_refund_allowed = excluded.partial_refund_allowed,"
            " notify_balance = excluded.notify_balance,"
            " fiscal = excluded.fiscal,"
            " fiscal_notify_url = excluded.fiscal_notify_url,"
            " fiscal_protection = excluded.fiscal_protection",
            (
                shop_id,
                password,
                login,
                notify_url,
                status_url,
                " ".join(callback_fields.split()),
                int(recurrent_allowed),
                int(partial_refund_allowed),
                int(notify_balance),
                int(fiscal),
                fiscal_notify_url,
                int(fiscal_protection),
            ),
        )

    def shop(self, shop_id: str) -> dict | None:
        """Return a shop by id, or None."""
        return self.store.one("SELECT * FROM shops WHERE shop_id = ?", (shop_id,))

    def shops(self) -> list[dict]:
        """Return every shop without its password."""
        rows = self.store.all("SELECT * FROM shops ORDER BY shop_id")
        for row in rows:
            del row["password"]
            for flag in SHOP_FLAGS:
                row[flag] = bool(row[flag])
        return rows

    def authenticate(self, shop_id: str, login: str, password: str) -> dict | None:
        """Return the shop if its login and password match, else None."""
        shop = self.shop(shop_id)
        if shop is None:
            return None
        login_ok = secrets.compare_digest(shop["login"].encode(), login.encode())
        password_ok = secrets.compare_digest(
            shop["password"].encode(), password.encode()
        )
        return shop if login_ok and password_ok else None

    # -- orders ----------------------------------------------------------------

    def order(self, row_id: int) -> dict:
        """Return an order attempt by its row id."""
        return self.store.one("SELECT * FROM orders WHERE id = ?", (row_id,))

    def orders(self, limit: int = 200) -> list[dict]:
        """Return the latest order attempts, newest first."""
        return self.store.all("SELECT * FROM orders ORDER BY id DESC LIMIT ?", (limit,))

    def attempts_of(self, shop_id: str, order_id: str) -> list[dict]:
        """Return every attempt of an order id in a shop, oldest first."""
        return self.store.all(
            "SELECT * FROM orders WHERE shop_id = ? AND order_id = ? ORDER BY id",
            (shop_id, order_id),
        )

    def order_locked(self, shop_id: str, order_id: str) -> bool:
        """Tell whether an order id is in process, paid or blocked in the shop."""
        marks = ", ".join("?" for _ in LOCKED)
        row = self.store.one(
            f"SELECT id FROM orders WHERE shop_id = ? AND order_id = ?"
            f" AND status IN ({marks})",
            (shop_id, order_id, *LOCKED),
        )
        return row is not None

    def callbacks_of(self, row_id: int) -> list[dict]:
        """Return the callbacks of an order attempt with their delivery attempts."""
        callbacks = self.store.all(
            "SELECT * FROM callbacks WHERE order_row = ? ORDER BY id", (row_id,)
        )
        for callback in callbacks:
            callback["params"] = json.loads(callback["params"])
            callback["attempts_made"] = self.store.all(
                "SELECT * FROM attempts WHERE callback_id = ? ORDER BY id",
                (callback["id"],),
            )
        return callbacks

    def status_checks_of(self, row_id: int) -> list[dict]:
        """Return the status requests sent about an order attempt."""
        return self.store.all(
            "SELECT * FROM status_checks WHERE order_row = ? ORDER BY id", (row_id,)
        )

    def find_orders(
        self,
        shop_id: str,
        order_id: str | None,
        period: tuple[float, float] | None,
        success: int,
        mode: int,
        show_partly_canceled: bool = False,
    ) -> list[dict]:
        """Select the order rows of a /results/ request (refund rows in mode 3)."""
        sql = "SELECT * FROM orders o WHERE shop_id = ?"
        params = [shop_id]
        if mode in (0, 3):
            sql += (
                " AND id = (SELECT MAX(id) FROM orders i"
                " WHERE i.shop_id = o.shop_id AND i.order_id = o.order_id)"
            )
        if mode == 1 or success == 1:
            sql += " AND status IN ('authorized', 'paid', 'canceled')"
        elif success == 0:
            sql += " AND status = 'not authorized'"
        if order_id is not None:
            sql += " AND order_id = ?"
            params.append(order_id)
        if period is not None:
            sql += " AND created_at BETWEEN ? AND ?"
            params += period
        orders = self.store.all(sql + " ORDER BY created_at, id", params)
        if show_partly_canceled:
            orders = [_partly_canceled(order) for order in orders]
        if mode == 3:
            orders = [row for order in orders for row in self._with_refunds(order)]
        return orders

    def _with_refunds(self, order: dict) -> list[dict]:
        refunds = self.store.all(
            "SELECT * FROM refunds WHERE order_row = ? ORDER BY id", (order["id"],)
        )
        rows = [order]
        for refund in refunds:
            moment = refund["created_at"]
            # A copy of the payment's row with the refund's own RRN, amount and
            # dates (v1.43 Table 34, PaymentsResults=3).
            rows.append(
                {
                    **order,
                    "status": "refund",
                    "refund_id": refund["id"],
                    "bill_number": refund["bill_number"],
                    "amount": refund["amount"],
                    "created_at": moment,
                    "updated_at": moment,
                }
            )
        return rows

    def revoke_sbp_binding(self, order_id: str, shop_id: str | None = None) -> int:
        """Unbind a parent SBP order's account, as the payer's bank app does."""
        sql = "UPDATE orders SET card_state = ? WHERE order_id = ? AND payment_type = ?"
        params = [REVOKED, order_id, SBP]
        if shop_id:
            sql += " AND shop_id = ?"
            params.append(shop_id)
        return self.store.run(sql, params).rowcount

    def mark_card(self, order_id: str, state: str, shop_id: str | None = None) -> int:
        """Make the card of a parent order expired or blocked; return rows changed."""
        sql = (
            "UPDATE orders SET card_state = ? WHERE order_id = ? AND card_masked <> ''"
        )
        params = [state, order_id]
        if shop_id:
            sql += " AND shop_id = ?"
            params.append(shop_id)
        return self.store.run(sql, params).rowcount

    # -- the payment page ------------------------------------------------------

    def open_session(self, fields: dict, fiscal: bool = False) -> str:
        """Keep a validated pay request server-side; return the form's token.

        fiscal: the request came to /v2/pay with a checked Receipt.
        """
        now = time.time()
        lifetimes = [
            int(fields[name])
            for name in ("Lifetime", "OrderLifetime")
            if fields.get(name)
        ]
        token = secrets.token_urlsafe(24)
        self.store.insert(
            "pay_sessions",
            {
                "token": token,
                "shop_id": fields["Shop_IDP"],
                "order_id": fields["Order_IDP"],
                "request": json.dumps(fields, ensure_ascii=False),
                "created_at": now,
                "expires_at": now + min(lifetimes) if lifetimes else None,
                "fiscal": int(fiscal),
            },
        )
        return token

    def session(self, token: str) -> dict | None:
        """Return an open pay session with its request fields, or None."""
        row = self.store.one("SELECT * FROM pay_sessions WHERE token = ?", (token,))
        if row is not None:
            row["request"] = json.loads(row["request"])
        return row

    def earlier_receipts(self, shop_id: str, order_id: str) -> list[str]:
        """Return the receipts (JSON texts, '' for none) an order id came with."""
        texts = [order["receipt"] for order in self.attempts_of(shop_id, order_id)]
        sessions = self.store.all(
            "SELECT request, fiscal FROM pay_sessions WHERE shop_id = ?"
            " AND order_id = ?",
            (shop_id, order_id),
        )
        for session in sessions:
            request = json.loads(session["request"])
            fiscal = session["fiscal"]
            texts.append(receipts.decode_text(request["Receipt"]) if fiscal else "")
        return texts

    def pay_with_card(self, token: str, card: Card, public_url: str = "") -> dict:
        """Decide a submitted card form and record the attempt; return the order.

        public_url is the sandbox's address as the payer sees it: receipts link
        to their page there.
        """
        return self._pay(token, public_url, card=card)

    def pay_with_sbp(self, token: str, public_url: str = "") -> dict:
        """Take the bank app's confirmation of an SBP payment; return the order.

        No card: BillNumber, ApprovalCode and the card fields stay empty
        (v1.43 §4.1.9); the order is paid at once, as SBP has no block.
        """
        return self._pay(token, public_url, card=None)

    def _pay(self, token: str, public_url: str, card: Card | None) -> dict:
        with self.store.tx():
            session = self.session(token)
            if session is None or session["used"]:
                raise PayPageError("Данный заказ не может быть оплачен")
            if session["expires_at"] and time.time() > session["expires_at"]:
                raise PayPageError("Время, отведённое на оплату заказа, истекло")
            if self.order_locked(session["shop_id"], session["order_id"]):
                raise PayPageError("Данный заказ не может быть оплачен")
            self.store.run("UPDATE pay_sessions SET used = 1 WHERE token = ?", (token,))
            fields = session["request"]
            shop = self.shop(session["shop_id"])
            amount = parse_amount(fields["Subtotal_P"])
            limits = fields.get("PaymentTypeLimits", "")
            if card is None:
                if SBP not in (
                    parse_payment_types(fields.get("PaymentTypeLimits", "")) or ()
                ):
                    raise PayPageError("Оплата через СБП для этого заказа недоступна")
                outcome = bank.Outcome(bank.APPROVED)
            else:
                if CARD not in (parse_payment_types(limits) or ()):
                    raise PayPageError("Оплата картой для этого заказа недоступна")
                outcome = self._judge_payment(card, amount)
            callback_fields = fields.get("CallbackFields", shop["callback_fields"])
            row_id = self._record_attempt(
                {
                    "shop_id": shop["shop_id"],
                    "order_id": fields["Order_IDP"],
                    "kind": "pay",
                    "amount": amount,
                    "currency": fields.get("Currency") or "RUB",
                    **_card_columns(card, session["order_id"]),
                    "customer_id": fields.get("Customer_IDP", ""),
                    "email": fields.get("Email", ""),
                    "phone": fields.get("Phone", ""),
                    "first_name": fields.get("FirstName", ""),
                    "last_name": fields.get("LastName", ""),
                    "middle_name": fields.get("MiddleName", ""),
                    "comment": fields.get("Comment", ""),
                    "pt_code": fields.get("PT_Code", ""),
                    "emoney_type": fields.get("EMoneyType", ""),
                    "is_recurrent_start": int(
                        fields.get("IsRecurrentStart") in RECURRENT_START_VALUES
                    ),
                    "preauth": int(fields.get("Preauth") == "1"),
                    "callback_fields": " ".join(callback_fields.split()),
                    "callback_format": _callback_format(fields),
                    **_fiscal_columns(fields, session["fiscal"], public_url),
                },
                outcome,
            )
            return self.order(row_id)

    def _judge_payment(self, card: Card, amount: int) -> bank.Outcome:
        if self.mode == "spec":
            return bank.judge_spec_payment(
                card.number, card.exp_month, card.exp_year, card.holder, card.cvc
            )
        return bank.judge_payment(
            card.number, card.exp_month, card.exp_year, amount, self.today()
        )

    def _record_attempt(self, row: dict, outcome: bank.Outcome) -> int:
        """Insert an order attempt with the acquirer's outcome and act on it."""
        now = time.time()
        row.update(
            balance=row["amount"],
            status="waiting" if outcome.approved else "not authorized",
            response_code="" if outcome.approved else outcome.code,
            created_at=now,
            updated_at=now,
        )
        row_id = self.store.insert("orders", row)
        if outcome.delayed:
            delay = self.scaled(self.settings["SANDBOX_DELAYED_SUCCESS_SECONDS"])
            self._schedule("settle", row_id, now + delay)
        elif outcome.approved:
            self._authorize(row_id)
        return row_id

    def _authorize(self, row_id: int) -> None:
        """Turn a waiting attempt into an authorized one and queue what follows."""
        now = time.time()
        with self.store.tx():
            changed = self.store.run(
                "UPDATE orders SET status = 'authorized', response_code = ?,"
                " bill_number = ?, approval_code = ?, authorized_at = ?,"
                " updated_at = ? WHERE id = ? AND status = 'waiting'",
                (
                    bank.APPROVED,
                    *self._bill_and_approval(row_id),
                    now,
                    now,
                    row_id,
                ),
            ).rowcount
            if not changed:
                return
            order = self.order(row_id)
            sale = []
            if order["fiscal"]:
                # Fiscal 02.1.18 §2.1.2 steps 8.3-8.5: the receipt before any
                # notification; a failure reverses the payment or keeps it.
                sale = self._fiscalize_sale(order)
                if self.order(row_id)["receipt_state"] == REVERSED:
                    return
            capture_at = None
            if not order["preauth"]:
                capture_at = now + self.scaled(self.settings["SANDBOX_CAPTURE_DELAY"])
            # Reordering holds "authorized" back until "paid" has gone out.
            hold = capture_at is not None and self.faults["reorder_callbacks"]
            self._queue_callback(order, "authorized", held=hold, receipts=sale)
            if capture_at is not None:
                self._schedule("capture", row_id, capture_at)
            check_delay = self.settings["SANDBOX_STATUS_CHECK_DELAY"]
            shop = self.shop(order["shop_id"])
            if check_delay > 0 and shop["status_url"]:
                # The set delay, then up to the jitter more (v1.43 §4.7.1, note 14).
                jitter = random.uniform(0, self.settings["SANDBOX_STATUS_CHECK_JITTER"])
                due = now + self.scaled(check_delay + jitter)
                self._schedule("status_check", row_id, due)

    def _bill_and_approval(self, row_id: int) -> tuple[str, str]:
        """A card payment's RRN and approval code; none for SBP (v1.43 §4.1.9)."""
        order = self.order(row_id)
        if order["payment_type"] == SBP:
            return "", ""
        return self._new_bill_number(), _approval_code()

    def _new_bill_number(self) -> str:
        while True:
            bill = "".join(secrets.choice(string.digits) for _ in range(12))
            if not self.store.one(
                "SELECT id FROM orders WHERE bill_number = ?"
                " UNION SELECT id FROM refunds WHERE bill_number = ?",
                (bill, bill),
            ):
                return bill

    # -- receipts --------------------------------------------------------------

    def _fiscalize_sale(self, order: dict) -> list[int]:
        """Register an authorized fiscal order's sale receipt; return its row ids.

        A failed receipt (a fault knob) reverses the payment quietly when the
        shop has fiscal_protection (error 53), else leaves it paid (54).
        """
        kept = self.faults.take("fail_sale_receipts_kept")
        if kept or self.faults.take("fail_sale_receipts"):
            shop = self.shop(order["shop_id"])
            if shop["fiscal_protection"] and not kept:
                self._reverse(order)
            else:
                self.store.update("orders", order["id"], receipt_state=RECEIPT_FAILED)
            return []
        row = self._register(order, cashbox.SALE, order["receipt"])
        self.store.update("orders", order["id"], receipt_state=FISCALIZED)
        return [row]

    def _reverse(self, order: dict) -> None:
        """Reverse a block whose receipt failed: no callback (§2.1.2, 8.3.1)."""
        now = time.time()
        self.store.insert(
            "refunds",
            {
                "order_row": order["id"],
                "amount": order["amount"],
                "bill_number": self._new_bill_number(),
                "created_at": now,
            },
        )
        self.store.update(
            "orders",
            order["id"],
            status="canceled",
            balance=0,
            receipt_state=REVERSED,
            updated_at=now,
        )

    def _register(
        self, order: dict, kind: int, text: str, refund_row: int | None = None
    ) -> int:
        """Fiscalize a receipt's JSON text for an order; return the receipt's row."""
        with self.store.tx():
            now = datetime.now(self.tz)
            midnight = datetime.combine(now.date(), datetime.min.time(), self.tz)
            # The shift is the day: its index counts the day's receipts.
            today = self.store.one(
                "SELECT COUNT(*) AS n FROM receipts WHERE created_at >= ?",
                (midnight.timestamp(),),
            )["n"]
            number = self.store.one("SELECT MAX(fiscal_number) AS n FROM receipts")["n"]
            while True:
                fiscal_id = cashbox.new_fiscal_id()
                if not self.store.one(
                    "SELECT id FROM receipts WHERE fiscal_id = ?", (fiscal_id,)
                ):
                    break
            receipt = receipts.parse_json(text)
            fiscal = cashbox.fiscal_block(
                receipt,
                fiscal_id=fiscal_id,
                kind=kind,
                number=(number or 0) + 1,
                shift_index=today + 1,
                moment=now,
                base_url=self.public_url(order),
            )
            return self.store.insert(
                "receipts",
                {
                    "order_row": order["id"],
                    "refund_row": refund_row,
                    "fiscal_id": fiscal_id,
                    "type": kind,
                    "fiscal_number": fiscal["register"]["fiscal_number"],
                    "fiscal_attr": fiscal["register"]["fiscal_attr"],
                    "body": cashbox.fiscalized(text, fiscal),
                    "created_at": now.timestamp(),
                },
            )

    def public_url(self, order: dict) -> str:
        """Return the sandbox's address for an order's receipt links."""
        return (
            self.settings["SANDBOX_PUBLIC_URL"]
            or order["public_url"]
            or DEFAULT_PUBLIC_URL
        )

    def receipts_of(self, row_id: int, refund_row: int | None = None) -> list[str]:
        """Return an order's fiscalized receipts (JSON texts), or one refund's."""
        sql = "SELECT body FROM receipts WHERE order_row = ?"
        params = [row_id]
        if refund_row is not None:
            sql += " AND refund_row = ?"
            params.append(refund_row)
        return [row["body"] for row in self.store.all(sql + " ORDER BY id", params)]

    def _bodies(self, receipt_rows) -> list[str]:
        return [
            self.store.one("SELECT body FROM receipts WHERE id = ?", (row,))["body"]
            for row in receipt_rows
        ]

    def find_receipt(self, fn: str, number: str, attr: str) -> dict | None:
        """Return a receipt by its check link's fn, i and fp, or None."""
        if fn != cashbox.ECR["fs"] or not (number.isdigit() and attr.isdigit()):
            return None
        return self.store.one(
            "SELECT * FROM receipts WHERE fiscal_number = ? AND fiscal_attr = ?",
            (int(number), int(attr)),
        )

    # -- callbacks -------------------------------------------------------------

    def _queue_callback(
        self,
        order: dict,
        status: str,
        held: bool = False,
        receipts=(),
        fiscal: bool = True,
    ) -> None:
        """Queue a callback, and a fiscal order's fiscal notification with receipts.

        A callback stops the retries of older ones of the order: one not tried
        yet still gets its first try (it is due earlier); only its retries are
        stopped, as Uniteller does. `receipts` are the rows of the receipts
        registered by this operation, for the fiscal notification (none if not
        `fiscal`).
        """
        shop = self.shop(order["shop_id"])
        if fiscal and order["fiscal"] and shop["fiscal_notify_url"]:
            self._queue_fiscal(order, status, shop, self._bodies(receipts))
        if not shop["notify_url"]:
            return
        now = time.time()
        with self.store.tx():
            older = self.store.all(
                "SELECT id, held, attempts FROM callbacks"
                " WHERE order_row = ? AND state = 'pending' AND channel = 'notify'",
                (order["id"],),
            )
            callback_id = self.store.insert(
                "callbacks",
                {
                    "order_row": order["id"],
                    "status": status,
                    "url": shop["notify_url"],
                    "params": json.dumps(self._callback_params(order, status, shop)),
                    "format": order["callback_format"],
                    "held": int(held),
                    "created_at": now,
                },
            )
            # A held callback waits for the next one (scheduled at once if none).
            due = now + (self.scaled(RETRY_GAPS[0]) if held else 0)
            self._schedule("deliver", callback_id, due)
            for callback in older:
                if callback["held"]:
                    self._release(callback["id"], now)
                elif callback["attempts"]:
                    self._supersede(callback["id"])

    def _queue_fiscal(self, order: dict, status: str, shop: dict, bodies) -> None:
        """Queue a fiscal notification (fiscal 02.1.18 §3.15) to its own URL.

        Each carries its own receipts, so a newer one never stops its retries.
        """
        names = order["callback_fields"].split()
        if order["payment_type"] == SBP:
            names = [name for name in names if name not in NOT_FOR_SBP]
        extra = {name: FIELDS[name](order, self.tz) for name in names}
        receipt = cashbox.as_array(bodies)
        params = {"Order_ID": order["order_id"], "Status": status, **extra}
        params["Signature"] = fiscal_callback_signature(
            order["order_id"], status, extra, shop["password"]
        )
        params["Receipt"] = receipt
        params["ReceiptSignature"] = fiscal_receipt_signature(
            order["order_id"], status, receipt, shop["password"]
        )
        self._insert_fiscal(order["id"], status, shop, params, order["callback_format"])

    def _insert_fiscal(self, row_id, status, shop, params, fmt) -> None:
        now = time.time()
        with self.store.tx():
            callback_id = self.store.insert(
                "callbacks",
                {
                    "order_row": row_id,
                    "status": status,
                    "url": shop["fiscal_notify_url"],
                    "params": json.dumps(params),
                    "format": fmt,
                    "channel": "fiscal",
                    "created_at": now,
                },
            )
            delay = self.faults["fiscal_notification_delay_ms"] / 1000
            self._schedule("deliver", callback_id, now + delay)

    def _callback_params(self, order: dict, status: str, shop: dict) -> dict:
        names = order["callback_fields"].split()
        if order["payment_type"] == SBP:
            # Absent from an SBP callback, and so from its signature (§4.1.9).
            names = [name for name in names if name not in NOT_FOR_SBP]
        values = [FIELDS[name](order, self.tz) for name in names]
        params = {"Order_ID": order["order_id"], "Status": status}
        params.update(zip(names, values, strict=True))
        params["Signature"] = callback_signature(
            order["order_id"], status, values, shop["password"]
        )
        return params

    def _release(self, callback_id: int, now: float) -> None:
        # Just after the callback queued now: the worker runs tasks by due time.
        self.store.update("callbacks", callback_id, held=0)
        self.store.run(
            "UPDATE tasks SET due_at = ?"
            " WHERE kind = 'deliver' AND ref = ? AND done = 0",
            (now + 0.001, callback_id),
        )

    def _supersede(self, callback_id: int) -> None:
        self.store.update("callbacks", callback_id, state="superseded")
        self.store.run(
            "UPDATE tasks SET done = 1 WHERE kind = 'deliver' AND ref = ?",
            (callback_id,),
        )

    def resend_latest_callback(self, row_id: int) -> None:
        """Queue the order's latest callback again (a status answer of NEW).

        The latest fiscal notification goes again too, as it was.
        """
        with self.store.tx():
            order = self.order(row_id)
            latest = self.store.one(
                "SELECT status FROM callbacks WHERE order_row = ?"
                " AND channel = 'notify' ORDER BY id DESC",
                (row_id,),
            )
            if latest is not None and self.shop(order["shop_id"])["notify_url"]:
                self._queue_callback(order, latest["status"], fiscal=False)
            fiscal = self.store.one(
                "SELECT * FROM callbacks WHERE order_row = ?"
                " AND channel = 'fiscal' ORDER BY id DESC",
                (row_id,),
            )
            shop = self.shop(order["shop_id"])
            if fiscal is not None and shop["fiscal_notify_url"]:
                self._insert_fiscal(
                    row_id,
                    fiscal["status"],
                    shop,
                    json.loads(fiscal["params"]),
                    fiscal["format"],
                )

    # -- the task queue --------------------------------------------------------

    def _schedule(self, kind: str, ref: int, due_at: float) -> None:
        self.store.insert("tasks", {"kind": kind, "ref": ref, "due_at": due_at})
        # The worker reads the queue under the store lock, so it sees this on commit.
        self.worker.wake()

    def next_task(self) -> dict | None:
        """Return the pending task due first, or None."""
        return self.store.one(
            "SELECT * FROM tasks WHERE done = 0 ORDER BY due_at, id LIMIT 1"
        )

    def finish_task(self, task_id: int) -> None:
        """Mark a task done."""
        self.store.update("tasks", task_id, done=1)

    def run_task(self, task: dict) -> None:
        """Run one due task of the queue."""
        handlers = {
            "deliver": self._deliver,
            "capture": self._capture_task,
            "settle": self._settle_task,
            "status_check": self._status_check_task,
            "sbp_refund": self._sbp_refund_task,
        }
        handlers[task["kind"]](task)

    def _deliver(self, task: dict) -> None:
        """Make one delivery try of a callback, applying the injected faults."""
        callback = self.store.one(
            "SELECT * FROM callbacks WHERE id = ?", (task["ref"],)
        )
        if callback["state"] != "pending":
            self.finish_task(task["id"])
            return
        faults = self.faults.as_dict()
        number = callback["attempts"] + 1
        drop = "drop_callbacks"
        if callback["channel"] == "fiscal":
            drop = "drop_fiscal_notifications"
        if faults[drop]:
            self._record_try(callback, None, "dropped (fault injection)")
            with self.store.tx():
                self.store.update(
                    "callbacks", callback["id"], state="dropped", attempts=number
                )
                self.finish_task(task["id"])
            return
        if number <= faults["callback_http_errors"]:
            answers = [(503, "injected HTTP 503")]
        else:
            params = json.loads(callback["params"])
            answers = delivery.post_callback_copies(
                callback["url"],
                params,
                callback["format"],
                max(faults["duplicate_callbacks"], 1),
                in_query=callback["channel"] == "notify",
            )
        for code, error in answers:
            self._record_try(callback, code, error)
        self._after_try(task, callback, number, any(c == 200 for c, _ in answers))

    def _record_try(self, callback: dict, code: int | None, error: str) -> None:
        self.store.insert(
            "attempts",
            {
                "callback_id": callback["id"],
                "at": time.time(),
                "url": callback["url"],
                "status": callback["status"],
                "http_code": code,
                "error": error,
            },
        )

    def _after_try(self, task: dict, callback: dict, number: int, ok: bool) -> None:
        with self.store.tx():
            current = self.store.one(
                "SELECT state FROM callbacks WHERE id = ?", (callback["id"],)
            )
            # A fiscal notification carries its own receipts: never superseded.
            newer = self.store.one(
                "SELECT id FROM callbacks WHERE order_row = ? AND id > ?"
                " AND channel = 'notify' AND ? = 'notify'",
                (callback["order_row"], callback["id"], callback["channel"]),
            )
            if ok:
                state = "delivered"
            elif newer is not None:
                state = "superseded"
            elif number >= len(RETRY_GAPS) + 1:
                state = "failed"
            else:
                state = current["state"]
            self.store.update("callbacks", callback["id"], state=state, attempts=number)
            if state == "pending":
                due = time.time() + self.scaled(RETRY_GAPS[number - 1])
                self.store.update("tasks", task["id"], due_at=due)
            else:
                self.finish_task(task["id"])

    def _capture_task(self, task: dict) -> None:
        """Capture an authorized payment and queue the paid callback."""
        with self.store.tx():
            self.finish_task(task["id"])
            self._capture(task["ref"])

    def _capture(self, row_id: int, amount: int | None = None) -> None:
        now = time.time()
        with self.store.tx():
            order = self.order(row_id)
            amount = order["amount"] if amount is None else amount
            changed = self.store.run(
                "UPDATE orders SET status = 'paid', amount = ?, balance = ?,"
                " updated_at = ? WHERE id = ? AND status = 'authorized'",
                (amount, amount - (order["amount"] - order["balance"]), now, row_id),
            ).rowcount
            if changed:
                self._queue_callback(self.order(row_id), "paid")

    def _settle_task(self, task: dict) -> None:
        """Authorize a payment from the delayed-success band."""
        with self.store.tx():
            self.finish_task(task["id"])
            self._authorize(task["ref"])

    def _status_check_task(self, task: dict) -> None:
        """Ask the shop's status URL about an order and act on the answer.

        PAID: nothing. NEW: send the callback again. CANCELLED: release the
        funds. No or a bad answer: ask again later, and after the last try act
        as on NEW (v1.43 §4.7.1).
        """
        order = self.order(task["ref"])
        shop = self.shop(order["shop_id"])
        if not shop["status_url"]:
            self.finish_task(task["id"])
            return
        code, answer, error = delivery.ask_status(
            shop["status_url"], order["order_id"], shop["shop_id"]
        )
        with self.store.tx():
            self.finish_task(task["id"])
            self.store.insert(
                "status_checks",
                {
                    "order_row": order["id"],
                    "at": time.time(),
                    "url": shop["status_url"],
                    "http_code": code,
                    "answer": answer,
                    "error": error,
                },
            )
            if answer == "CANCELLED":
                self._cancel(order["id"])
            elif answer == "NEW":
                self.resend_latest_callback(order["id"])
            elif not answer:
                self._after_bad_status_answer(order["id"])

    def _after_bad_status_answer(self, row_id: int) -> None:
        asked = self.store.one(
            "SELECT COUNT(*) AS n FROM status_checks WHERE order_row = ?", (row_id,)
        )["n"]
        if asked <= STATUS_CHECK_RETRIES:
            due = time.time() + self.scaled(STATUS_CHECK_RETRY_GAP)
            self._schedule("status_check", row_id, due)
        else:
            self.resend_latest_callback(row_id)

    def _cancel(self, row_id: int) -> None:
        """Release the funds of an order the shop called CANCELLED.

        A fiscalized order gets its refund receipt from the register (made from
        the sale's receipt, docs/sandbox.md).
        """
        with self.store.tx():
            order = self.order(row_id)
            # The sandbox captures within seconds, Uniteller at the day's close:
            # a paid order here is refunded in full, as a block would be released.
            if order["status"] in ("authorized", "paid") and order["balance"] > 0:
                rows = []
                if order["receipt_state"] == FISCALIZED:
                    text = cashbox.refund_of_balance(
                        order["receipt"], order["balance"], order["amount"]
                    )
                    rows.append(self._register(order, cashbox.REFUND, text))
                self._refund(order, order["balance"], rows)

    # -- server-to-server operations -------------------------------------------

    def recurrent(
        self, fields: dict, fiscal: bool = False, public_url: str = ""
    ) -> dict:
        """Charge a parent order's card again; return the new order attempt.

        fiscal: /v2/recurrent (fiscal 02.1.18 §3.6, §2.1.7): its Receipt is
        checked after the request's own fields, and registered once the charge
        is approved; a failed receipt answers 53 (reversed) or 54 (kept).
        """
        names = ("Shop_IDP", "Order_IDP", "Subtotal_P", "Parent_Order_IDP", "Signature")
        if fiscal:
            names += ("Receipt", "ReceiptSignature")
        _require(
            fields, names, "Mandatory parameter '{}' is not present in the request"
        )
        shop = self.shop(fields["Shop_IDP"])
        if shop is None:
            raise OperationError(25, "Shop_IDP not found")
        parent_shop_param = fields.get("Parent_Shop_IDP")
        parent_shop_id = parent_shop_param or shop["shop_id"]
        if self.shop(parent_shop_id) is None:
            raise OperationError(25, "Parent_Shop_IDP not found")
        expected = recurrent_signature(
            fields["Shop_IDP"],
            fields["Order_IDP"],
            fields["Subtotal_P"],
            fields["Parent_Order_IDP"],
            shop["password"],
            parent_shop_id=parent_shop_param,
            recurrent_type=fields.get("RecurrentType"),
        )
        # Compared with the upper-case hex as sent: a lower-case one is invalid.
        if not secrets.compare_digest(expected, fields["Signature"]):
            raise OperationError(2, "Invalid signature")
        amount = parse_amount(fields["Subtotal_P"])
        if amount is None:
            raise OperationError(5, "Field Subtotal_P has bad format")
        if fields.get("RecurrentType", "1") not in RECURRENT_TYPES:
            raise OperationError(5, "Field RecurrentType has bad format")
        for name in ("Order_IDP", "Parent_Order_IDP"):
            if len(fields[name]) > 127 or not fields[name].strip():
                raise OperationError(5, f"Field {name} has bad format")
        # "Bad format" also covers a value out of the allowed range (Table 14).
        if self.mode == "spec" and not bank.spec_amount_allowed(amount):
            raise OperationError(5, "Field Subtotal_P has bad format")
        receipt_text = ""
        if fiscal:
            receipt_text = check_receipt_fields(shop, fields, amount)
        if not shop["recurrent_allowed"]:
            raise OperationError(22, "Recurrent payment not allowed")
        self._fail_if_injected()
        with self.store.tx():
            if self.attempts_of(shop["shop_id"], fields["Order_IDP"]):
                raise OperationError(24, "Order_IDP already exists")
            parent = self._parent(parent_shop_id, fields["Parent_Order_IDP"])
            if parent["payment_type"] == SBP and parent["card_state"] == REVOKED:
                # The payer unbound the account in the bank's app; Uniteller
                # learns it only now (SBP v04 §9.1, Table 6: 40).
                raise OperationError(40, "Token not found")
            outcome = self._judge_recurrent(parent, amount)
            row_id = self._record_attempt(
                {
                    "shop_id": shop["shop_id"],
                    "order_id": fields["Order_IDP"],
                    "kind": "recurrent",
                    "amount": amount,
                    "currency": parent["currency"],
                    "card_masked": parent["card_masked"],
                    "card_expiry": parent["card_expiry"],
                    "card_state": parent["card_state"],
                    "card_holder": parent["card_holder"],
                    "customer_id": parent["customer_id"],
                    "payment_type": parent["payment_type"],
                    "parent_shop_id": parent_shop_id,
                    "parent_order_id": parent["order_id"],
                    "callback_fields": shop["callback_fields"],
                    "callback_format": _callback_format(fields),
                    "fiscal": int(fiscal),
                    "receipt": receipt_text,
                    "public_url": public_url,
                },
                outcome,
            )
            # Read in the unit: the answer tells the state the charge left the
            # order in, not a capture that may follow it at once.
            order = self.order(row_id)
        if outcome.delayed:
            raise OperationError(28, "Payment result not received")
        if order["receipt_state"] == REVERSED:
            raise OperationError(53, "Fiscal receipt failure")
        if order["receipt_state"] == RECEIPT_FAILED:
            raise OperationError(54, "Fiscal receipt failure. Order not cancelled")
        return order

    def _parent(self, shop_id: str, order_id: str) -> dict:
        marks = ", ".join("?" for _ in SUCCESSFUL)
        parent = self.store.one(
            f"SELECT * FROM orders WHERE shop_id = ? AND order_id = ?"
            f" AND status IN ({marks}) ORDER BY id DESC",
            (shop_id, order_id, *SUCCESSFUL),
        )
        if parent is None:
            raise OperationError(23, "Incorrect Parent_Order_IDP")
        if not parent["is_recurrent_start"]:
            raise OperationError(
                26, "Parent_Order_IDP must be marked as IsRecurrentStart"
            )
        return parent

    def _judge_recurrent(self, parent: dict, amount: int) -> bank.Outcome:
        """Decide a recurrent charge on the parent's card, after the daily cap."""
        midnight = datetime.combine(self.today(), datetime.min.time(), self.tz)
        failed = self.store.one(
            "SELECT COUNT(*) AS n FROM orders WHERE kind = 'recurrent'"
            " AND parent_shop_id = ? AND parent_order_id = ?"
            " AND status = 'not authorized' AND created_at >= ?",
            (parent["shop_id"], parent["order_id"], midnight.timestamp()),
        )
        if failed["n"] >= FAILED_RECURRENT_PER_DAY:
            return bank.Outcome(bank.UNITELLER_LIMIT)
        if parent["card_state"] == "blocked":
            return bank.Outcome(bank.SYSTEM_ERROR)
        if parent["payment_type"] == SBP:
            # A bound SBP account has no expiry; its bank may answer late (28).
            late = self.faults.take("sbp_bank_silent")
            return bank.Outcome(bank.APPROVED, delayed=late)
        month, year = (int(part) for part in parent["card_expiry"].split("/"))
        expired = bank.is_expired(month, year, self.today())
        if parent["card_state"] == "expired" or expired:
            return bank.Outcome(bank.BAD_EXPIRY)
        if self.mode == "spec":
            return bank.Outcome(bank.APPROVED)
        return bank.judge_amount(amount)

    def authenticate_operation(self, fields: dict) -> dict:
        """Check the login of /unblock/ and /confirm/; return the shop."""
        names = ("Billnumber", "Shop_ID", "Login", "Password")
        _require(
            fields, names, "Mandatory parameter '{}' is not present in the request"
        )
        shop = self.authenticate(fields["Shop_ID"], fields["Login"], fields["Password"])
        if shop is None:
            raise OperationError(1, "Authentication error")
        return shop

    def unblock(self, shop: dict, fields: dict) -> dict:
        """Reverse or refund a payment, fully or in part; return the order."""
        amount = _optional_amount(fields)
        self._fail_if_injected()
        with self.store.tx():
            order = self._by_bill(shop, fields["Billnumber"])
            if order["status"] == "canceled":
                raise OperationError(16, "The order has already been cancelled")
            if order["status"] not in ("authorized", "paid"):
                raise OperationError(17, "Authorization reversal is not allowed")
            refund = order["balance"] if amount is None else amount
            if refund > order["balance"]:
                raise OperationError(
                    5,
                    f"Field Subtotal_P has bad format: {fields['Subtotal_P']} exceeds"
                    f" the refundable balance {FIELDS['Balance'](order, self.tz)}",
                )
            if refund < order["balance"] and not shop["partial_refund_allowed"]:
                raise OperationError(35, "Partial return is not supported")
            self._refund(order, refund)
            return self.order(order["id"])

    def _refund(self, order: dict, amount: int, receipts=()) -> int:
        """Book a refund (or a released block), notify the shop; return its row.

        Uniteller notifies partial refunds too (v1.43 §4.6.1.1): `partly
        canceled` if the shop asked for balance changes, else the order's status.
        `receipts` are the refund receipts' rows, linked to it here.
        """
        now = time.time()
        refund_row = self.store.insert(
            "refunds",
            {
                "order_row": order["id"],
                "amount": amount,
                "bill_number": self._new_bill_number(),
                "created_at": now,
            },
        )
        balance = order["balance"] - amount
        status = "canceled" if balance == 0 else order["status"]
        self.store.update(
            "orders", order["id"], balance=balance, status=status, updated_at=now
        )
        for row in receipts:
            self.store.update("receipts", row, refund_row=refund_row)
        told = status
        if status != "canceled" and self.shop(order["shop_id"])["notify_balance"]:
            told = "partly canceled"
        self._queue_callback(self.order(order["id"]), told, receipts=receipts)
        return refund_row

    def cancel_fiscal(self, fields: dict) -> tuple[dict, list[str]]:
        """Refund a payment with its refund receipt (fiscal 02.1.18 §3.14, §2.5.2).

        Return the order and the receipts registered; raise FiscalOperationError
        with the Code of the answer. The refund receipt is registered first: it
        failing refunds nothing (50); the refund failing after it issues a
        correction receipt (51).
        """
        for name in ("OrderID", "UPID", "Signature"):
            if not fields.get(name):
                raise FiscalOperationError(
                    2, f"Mandatory parameter '{name}' is not present in the request"
                )
        subtotal = fields.get("Subtotal")
        if subtotal is not None and not CANCEL_AMOUNT.fullmatch(subtotal):
            raise FiscalOperationError(3, "Field Subtotal has invalid format")
        shop = self.shop(fields["UPID"])
        if shop is None:
            raise FiscalOperationError(3, "UPID not found")
        signature_ok = same(
            cancel_signature(fields, shop["password"]), fields["Signature"]
        )
        with self.store.tx():
            order = self._last_success(shop["shop_id"], fields["OrderID"])
            if order["status"] == "canceled":
                # Before the receipt's checks: there is nothing left to refund.
                raise FiscalOperationError(
                    3, "The order has already been cancelled", order
                )
            amount = order["balance"] if subtotal is None else _kopecks(subtotal)
            if "Receipt" in fields:
                text = self._check_cancel_receipt(
                    shop, fields, order, amount, signature_ok
                )
            else:
                if not shop["fiscal"]:
                    raise FiscalOperationError(
                        5, "Cashbox settings does not set for upoint", order
                    )
                if not signature_ok:
                    raise FiscalOperationError(11, "Invalid ReceiptSignature", order)
                text = self._sale_receipt_to_refund(order, subtotal, amount)
            self._check_refundable(shop, order, amount)
            if self.faults["operation_failed"]:
                raise FiscalOperationError(1, "The operation failed", order)
            if self.faults.take("fail_refund_receipts"):
                raise FiscalOperationError(50, "Fiscal reversal receipt failure", order)
            refund = self._register(order, cashbox.REFUND, text)
            if self.faults.take("fail_refunds_after_receipt"):
                number = self.store.one(
                    "SELECT fiscal_number FROM receipts WHERE id = ?", (refund,)
                )["fiscal_number"]
                correction = cashbox.correction_of(text, number, self.today())
                rows = [
                    refund,
                    self._register(order, cashbox.SALE_CORRECTION, correction),
                ]
                failure = FiscalOperationError(
                    51, "Fiscal reversal operation failure", order, self._bodies(rows)
                )
            elif order["payment_type"] == SBP:
                self._send_sbp_refund(order, amount, refund)
                return self.order(order["id"]), self._bodies([refund])
            else:
                self._refund(order, amount, [refund])
                return self.order(order["id"]), self._bodies([refund])
        raise failure

    def _send_sbp_refund(self, order: dict, amount: int, receipt_row: int) -> None:
        """Send an SBP refund to the NSPK: the order stays paid until it settles.

        v1.43 §4.5.2.4: the answer says Paid; the order turns Canceled some
        time later, told by the callback and /results/.
        """
        if order["sbp_refund_pending"]:
            raise FiscalOperationError(1, "The operation failed", order)
        self.store.update(
            "orders",
            order["id"],
            sbp_refund_pending=amount,
            sbp_refund_receipt=receipt_row,
        )
        delay = self.scaled(self.settings["SANDBOX_SBP_REFUND_DELAY"])
        self._schedule("sbp_refund", order["id"], time.time() + delay)

    def _sbp_refund_task(self, task: dict) -> None:
        """Settle an SBP refund the NSPK has made."""
        with self.store.tx():
            self.finish_task(task["id"])
            order = self.order(task["ref"])
            amount = order["sbp_refund_pending"]
            if not amount:
                return
            self.store.update(
                "orders", order["id"], sbp_refund_pending=0, sbp_refund_receipt=0
            )
            self._refund(self.order(order["id"]), amount, [order["sbp_refund_receipt"]])

    def _last_success(self, shop_id: str, order_id: str) -> dict:
        marks = ", ".join("?" for _ in SUCCESSFUL)
        order = self.store.one(
            f"SELECT * FROM orders WHERE shop_id = ? AND order_id = ?"
            f" AND status IN ({marks}) ORDER BY id DESC",
            (shop_id, order_id, *SUCCESSFUL),
        )
        if order is None:
            raise FiscalOperationError(3, "Order not found")
        return order

    def _check_cancel_receipt(self, shop, fields, order, amount, signed) -> str:
        """Run the receipt checks of §2.5.2 step 2 on a refund receipt.

        /v2/cancel has no ReceiptSignature: its Signature, which signs the
        Receipt, is what step 2.4 checks (error 11).
        """
        try:
            receipts.check_request(
                fields["Receipt"],
                amount,
                fiscal_enabled=bool(shop["fiscal"]),
                signature_ok=signed,
            )
        except receipts.ReceiptError as error:
            log.info("refund receipt refused: %s (%s)", error.text, error.detail)
            raise FiscalOperationError(
                error.code, error.text, order, detail=error.detail
            ) from None
        return receipts.decode_text(fields["Receipt"])

    def _sale_receipt_to_refund(self, order, subtotal, amount) -> str:
        """Return the refund receipt of a cancel sent without one (§3.14).

        Only the whole of a fiscalized sale may be cancelled so, with Subtotal
        the sale's amount: its receipt is refunded as it was.
        """
        if order["receipt_state"] != FISCALIZED:
            raise FiscalOperationError(
                2, "Mandatory parameter 'Receipt' is not present in the request", order
            )
        if subtotal is None:
            raise FiscalOperationError(
                2, "Mandatory parameter 'Subtotal' is not present in the request", order
            )
        if amount != order["amount"] or order["balance"] != order["amount"]:
            raise FiscalOperationError(
                3, "A cancel without Receipt must be of the whole payment", order
            )
        return order["receipt"]

    def _check_refundable(self, shop: dict, order: dict, amount: int) -> None:
        if amount > order["balance"]:
            raise FiscalOperationError(
                3,
                f"Subtotal {format_amount(amount)} exceeds the order balance"
                f" {format_amount(order['balance'])}",
                order,
            )
        if amount == 0:
            raise FiscalOperationError(3, "Field Subtotal has invalid format", order)
        if amount < order["balance"] and not shop["partial_refund_allowed"]:
            raise FiscalOperationError(3, "Partial return is not supported", order)

    def confirm(self, shop: dict, fields: dict) -> dict:
        """Capture a Preauth=1 block, fully or for less; return the order."""
        amount = _optional_amount(fields)
        self._fail_if_injected()
        with self.store.tx():
            order = self._by_bill(shop, fields["Billnumber"])
            if order["status"] == "canceled":
                raise OperationError(16, "The order has already been cancelled")
            if not order["preauth"] or order["status"] != "authorized":
                raise OperationError(18, "Authorization confirm is not allowed")
            if time.time() - order["authorized_at"] > CONFIRM_DEADLINE:
                raise OperationError(19, "Authorization confirm is too late")
            if amount is not None and amount > order["amount"]:
                raise OperationError(5, "Field Subtotal_P has bad format")
            self._capture(order["id"], amount)
            return self.order(order["id"])

    def _by_bill(self, shop: dict, bill_number: str) -> dict:
        order = self.store.one(
            "SELECT * FROM orders WHERE shop_id = ? AND bill_number = ?",
            (shop["shop_id"], bill_number),
        )
        if order is None:
            raise OperationError(4, "Bill not found")
        return order

    def _fail_if_injected(self) -> None:
        if self.faults["operation_failed"]:
            raise OperationError(15, "The operation failed")


def _partly_canceled(order: dict) -> dict:
    """Name a part-refunded order `partly canceled` (ShowPartlyCanceled=1)."""
    refunded = order["status"] in ("authorized", "paid") and (
        0 < order["balance"] < order["amount"]
    )
    return {**order, "status": "partly canceled"} if refunded else order


def _card_columns(card: Card | None, order_id: str) -> dict:
    """The columns of the means of payment: a card's, or an SBP QR's id."""
    if card is None:
        return {"payment_type": SBP, "qrc_id": qrc_id_of(order_id)}
    return {
        "card_masked": bank.mask(card.number),
        "card_expiry": f"{card.exp_month:02d}/{card.exp_year}",
        "card_holder": card.holder,
    }


def qrc_id_of(order_id: str) -> str:
    """The NSPK's QR id of an order: 32 letters and digits, the same each time."""
    return "BD" + hashlib.sha256(order_id.encode()).hexdigest()[:30].upper()


def sbp_payload(order_id: str, amount: int) -> str:
    """The NSPK link an SBP QR code holds, shaped like SBP v04 §6's example."""
    return (
        f"https://qr.nspk.ru/{qrc_id_of(order_id)}?type=02&bank=100000000000"
        f"&sum={amount}&cur=RUB&crc=0000"
    )


def _require(fields: dict, names, template: str) -> None:
    for name in names:
        if not fields.get(name):
            raise OperationError(3, template.format(name))


def _optional_amount(fields: dict) -> int | None:
    if not fields.get("Subtotal_P"):
        return None
    amount = parse_amount(fields["Subtotal_P"])
    if amount is None:
        raise OperationError(5, "Field Subtotal_P has bad format")
    return amount


def _approval_code() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(6))


def _callback_format(fields: dict) -> str:
    return "json" if fields.get("CallbackFormat", "").lower() == "json" else ""


def check_receipt_fields(shop: dict, fields: dict, amount: int) -> str:
    """Check the Receipt of /v2/recurrent; return its JSON text or raise its code."""
    expected = receipt_signature(
        fields["Shop_IDP"],
        fields["Order_IDP"],
        fields["Subtotal_P"],
        fields["Receipt"],
        shop["password"],
    )
    try:
        _, text = receipts.check_request(
            fields["Receipt"],
            amount,
            fiscal_enabled=bool(shop["fiscal"]),
            signature_ok=same(expected, fields["ReceiptSignature"]),
        )
    except receipts.ReceiptError as error:
        log.info("receipt refused: %s (%s)", error.text, error.detail)
        raise OperationError(error.code, error.text) from None
    return text


def _fiscal_columns(fields: dict, fiscal: bool, public_url: str) -> dict:
    """Return an order attempt's fiscal columns from its pay request."""
    if not fiscal:
        return {}
    return {
        "fiscal": 1,
        "receipt": receipts.decode_text(fields["Receipt"]),
        "public_url": public_url,
    }


def _kopecks(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int(fraction.ljust(2, "0") or 0)


def fiscal_answer(code: int, note: str, order=None, bodies=()) -> dict:
    """Return the JSON answer of /v2/cancel (fiscal 02.1.18 §3.14)."""
    return {
        "Code": f"{code:02d}",
        "Note": note,
        "Receipt": cashbox.as_array(bodies),
        "Status": STATUS_NAMES[order["status"]] if order else "",
        "Balance": format_amount(order["balance"]) if order else "",
    }
