"""The console's wording of codes: refusals, kinds, refund states, parameters."""

import json
import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..labels import status_label
from ..money import format_human, to_kopecks

REFUSALS = {
    "not_credited": _l(
        "Only a credited (authorized or paid) transaction can be refunded."
    ),
    "no_bill_number": _l(
        "Uniteller has not told us this payment's bill number yet: "
        "re-check its status first."
    ),
    "pending": _l(
        "A refund of this transaction is in progress: re-check its status "
        "to learn how it ended."
    ),
    "not_positive": _l("The amount must be greater than zero."),
    "sbp_partial": _l(
        "An SBP payment is refunded in full only: Uniteller reports no partial "
        "SBP refunds."
    ),
}
KIND_LABELS = {
    "payment": _l("Card payment"),
    "bind": _l("Autopay binding"),
    "recurrent": _l("Autopay charge"),
}
REFUND_STATUSES = {
    "pending": _l("In progress"),
    "done": _l("Done"),
    "failed": _l("Refused"),
}
RECEIPT_STATES = {
    "pending": _l("being issued"),
    "issued": _l("issued"),
    "failed": _l("failed"),
    "missing": _l("paid, no receipt"),
    "void": _l("not due"),
}
RECEIPT_KINDS = {"sale": _l("Sale"), "refund": _l("Refund")}
DOCUMENT_TYPES = {
    0: _l("sale"),
    1: _l("refund"),
    2: _l("sale correction"),
    3: _l("refund correction"),
}
DIFFERENCES = {
    "missing_credit": _l("paid at Uniteller, not credited here"),
    "not_successful_there": _l("credited here, not successful at Uniteller"),
    "amount_mismatch": _l("amounts differ"),
    "unknown_here": _l("unknown here"),
    "unreadable_there": _l("Uniteller's row did not parse"),
}
CONNECTION_WORDS = {
    "refused": _l(
        "Uniteller refused the request: check the shop ID, login and password."
    ),
    "rate_limited": _l("HTTP 429: too many requests, try again in a few seconds."),
    "not_uniteller": _l("the address answered HTTP 200, not in Uniteller's format."),
    "unavailable": _l("no usable answer"),
    "failed": _l("the request failed."),
}
PARAM_LABELS = {
    "shop_id": _l("Shop ID (Shop_IDP)"),
    "login": _l("Login"),
    "password": _l("Password"),
    "gateway_url": _l("Uniteller address"),
    "callback_fields": _l("Callback fields"),
    "lifetime": _l("Payment form lifetime, s"),
    "min_amount": _l("Minimum payment, ₽"),
    "max_amount": _l("Maximum payment, ₽"),
    "autopay_weekly": _l("Weekly payments"),
    "autopay_monthly": _l("Monthly payments"),
    "autopay_automatic": _l("Automatic mode"),
    "autopay_retry_days": _l("Retry a softly declined charge, days"),
    "auto_threshold": _l("Automatic mode: top up when the balance is below, ₽"),
    "auto_target": _l("Automatic mode: top up to, ₽"),
    "fiscal": _l("Send 54-FZ receipts"),
    "fiscal_gateway_url": _l("Uniteller address for payments with receipts"),
    "fiscal_taxmode": _l("Tax system"),
    "fiscal_vat": _l("VAT rate"),
    "fiscal_payattr": _l("Payment method (payattr)"),
    "fiscal_lineattr": _l("Subject of payment (lineattr)"),
    "fiscal_line": _l("Receipt line; {contract} is the contract number"),
    "fiscal_ffd": _l("Fiscal document format"),
    "fiscal_place": _l("Place of settlement (the site's address)"),
    "sbp": _l("Payments by SBP (needs 54-FZ receipts)"),
    "sbp_autopay": _l("Autopay by SBP (a bound SBP account)"),
}
TAXMODE_LABELS = {
    "": _l("— choose —"),
    "0": _l("0: general (OSN)"),
    "1": _l("1: simplified, income (USN)"),
    "2": _l("2: simplified, income minus expense"),
    "4": _l("4: unified agricultural tax (ESHN)"),
    "5": _l("5: patent"),
}
VAT_LABELS = {
    "": _l("— choose —"),
    "-1": _l("-1: no VAT"),
    "0": "0 %",
    "5": "5 %",
    "7": "7 %",
    "10": "10 %",
    "22": "22 %",
    "105": "5/105",
    "107": "7/107",
    "110": "10/110",
    "122": "22/122",
}
PAYATTR_LABELS = {
    "1": _l("1: full prepayment"),
    "2": _l("2: partial prepayment"),
    "3": _l("3: advance"),
    "4": _l("4: full payment"),
    "5": _l("5: partial payment and credit"),
    "6": _l("6: credit"),
    "7": _l("7: payment of a credit"),
}
VERSION_ACTIONS = {
    "create": _l("created"),
    "edit": _l("edited"),
    "copy": _l("copied"),
    "activate": _l("activated"),
    "rollback": _l("rolled back to"),
}

# Review reasons are stored in English (a log's words); shown in the reader's.
_REVIEW_TOTAL = re.compile(r"Total (?P<total>.*) differs from the order's amount")
REVIEW_REASONS = {"still open after 7 days": _l("still open after 7 days")}


def review_reason(reason):
    """Word a stored review reason in the reader's language."""
    if not reason:
        return ""
    total = _REVIEW_TOTAL.fullmatch(reason)
    if total:
        return _(
            "The total Uniteller reported (%(total)s) differs from the order's amount",
            total=total.group("total"),
        )
    return REVIEW_REASONS.get(reason, reason)


AUDIT_ACTIONS = {
    "autopay.charge": _l("autopay: charged by hand"),
    "autopay.off": _l("autopay: turned off"),
    "billing_connector.create": _l("billing connector: created"),
    "billing_connector.update": _l("billing connector: changed"),
    "billing_delivery.done": _l("billing delivery: marked done"),
    "billing_delivery.readdress": _l("billing delivery: sent to another account"),
    "billing_delivery.retry": _l("billing delivery: retried"),
    "configuration.activate": _l("configuration: activated"),
    "configuration.copy": _l("configuration: copied"),
    "configuration.create": _l("configuration: created"),
    "configuration.rollback": _l("configuration: rolled back"),
    "configuration.test": _l("configuration: connection tested"),
    "configuration.update": _l("configuration: edited"),
    "contract.import": _l("contracts: imported"),
    "contract.link": _l("contract: linked to an instance"),
    "instance.create": _l("module instance: created"),
    "reconcile.fix": _l("reconciliation: fixed"),
    "task.run": _l("task: run by hand"),
    "transaction.check": _l("transaction: status re-checked"),
    "transaction.receipt_check": _l("transaction: receipts re-checked"),
    "transaction.refund": _l("transaction: refunded"),
    "transaction.reviewed": _l("transaction: marked as reviewed"),
}
OBJECT_TYPES = {
    "billing_connector": _l("billing connector"),
    "billing_delivery": _l("billing delivery"),
    "configuration": _l("configuration"),
    "contract": _l("contract"),
    "instance": _l("module instance"),
    "task": _l("task"),
    "transaction": _l("transaction"),
}
# The names of the values an audit entry keeps, beyond the parameters'.
AUDIT_KEYS = {
    "active": _l("active"),
    "amount": _l("amount, ₽"),
    "charge": _l("charge"),
    "configuration": _l("configuration"),
    "error": _l("error"),
    "from": _l("from"),
    "instance": _l("module instance"),
    "name": _l("name"),
    "needs_review": _l("needs review"),
    "ok": _l("connection works"),
    "orders": _l("orders in the answer"),
    "params": _l("parameters"),
    "partial": _l("partly"),
    "refund": _l("refund no."),
    "refund_status": _l("refund status"),
    "refundable": _l("can be refunded, ₽"),
    "review_reason": _l("review reason"),
    "run": _l("run"),
    "slot": _l("run"),
    "state": _l("state"),
    "status": _l("status"),
    "to": _l("to"),
}
AMOUNT_KEYS = ("amount", "refundable")  # kopecks, or a wire text "123.45"
YES_NO = {"yes": _l("yes"), "no": _l("no"), True: _l("yes"), False: _l("no")}
EVENT_SOURCES = {
    "api": _l("API"),
    "autopay": _l("autopay"),
    "cabinet": _l("cabinet"),
    "callback": _l("Uniteller's callback"),
    "quick-pay": _l("quick pay"),
    "reconcile": _l("reconciliation"),
    "recurrent": _l("autopay charge"),
    "refund": _l("money refund"),
    "status": _l("status check"),
}
EVENT_KINDS = {
    "note": _l("note"),
    "orphan": _l("unknown order"),
    "received": _l("received"),
    "refund": _l("money refund"),
    "rejected": _l("rejected"),
    "review": _l("flagged for review"),
    "state": _l("status change"),
}
# Notes the code writes in English into events and refunds, in the reader's words.
NOTES = {
    "created": _l("created"),
    "partly canceled at Uniteller": _l("partly canceled at Uniteller"),
    "unknown order": _l("unknown order"),
    "unknown to Uniteller after its lifetime": _l(
        "unknown to Uniteller after its lifetime"
    ),
    "confirmed by a status re-check": _l("confirmed by a status re-check"),
    "Uniteller reports the order canceled": _l("Uniteller reports the order canceled"),
    "the refund failed; correction receipts undo this receipt": _l(
        "the refund failed; correction receipts undo this receipt"
    ),
    "still open after 7 days": _l("still open after 7 days"),
    "reviewed": _l("marked as reviewed by an operator"),
}
TASK_DESCRIPTIONS = {
    "status-check": _l("asks Uniteller about orders no callback has finished"),
    "refund-check": _l("settles refunds whose /unblock/ answer was lost or not final"),
    "receipt-check": _l(
        "asks /v2/results for receipts still pending after payment; "
        "marks them missing after RECEIPT_MISSING_MINUTES"
    ),
    "autopay": _l("charges weekly, monthly and automatic autopays that are due"),
    "billing-sweep": _l(
        "sends billing deliveries no job sent (a flushed Redis, a killed worker)"
    ),
    "retention": _l("deletes raw event rows older than EVENT_RETENTION_DAYS"),
}


# A refund's steps in a transaction's history (refunds._note): kopecks, in English.
_REFUND_STEP = re.compile(
    r"refund #(?P<id>\d+) of (?P<kopecks>\d+) kopecks (?P<step>asked|done)"
)
_REFUND_NOTE = re.compile(r"refund #(?P<id>\d+): (?P<note>.*)", re.S)


def note_words(note):
    """Word a stored note in the reader's language (unknown ones as they are)."""
    if not note:
        return ""
    step = _REFUND_STEP.fullmatch(note)
    if step:
        shown = {"id": step.group("id"), "amount": format_human(int(step.group(2)))}
        if step.group("step") == "asked":
            return _("refund no. %(id)s of %(amount)s ₽ asked", **shown)
        return _("refund no. %(id)s of %(amount)s ₽ done", **shown)
    refund = _REFUND_NOTE.fullmatch(note)
    if refund:
        words = note_words(refund.group("note"))
        return _("refund no. %(id)s: %(note)s", id=refund.group("id"), note=words)
    return REVIEW_REASONS.get(note) or NOTES.get(note, note)


def audit_value(key, value):
    """Word one value of an audit entry: yes/no, amounts in roubles, statuses."""
    if isinstance(value, bool) or value in ("yes", "no"):
        return str(YES_NO[value])
    if key in AMOUNT_KEYS and isinstance(value, int):
        return format_human(value)
    if key in AMOUNT_KEYS and isinstance(value, str):
        try:
            return format_human(to_kopecks(value))
        except ValueError:
            return value
    if key == "status":
        return str(status_label(value))
    if key == "review_reason":
        return str(review_reason(value))
    if key == "refund_status":
        return str(REFUND_STATUSES.get(value, value))
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def audit_values(values):
    """List an audit entry's before or after as (name, words), parameters flattened."""
    if not isinstance(values, dict):
        return [("", audit_value("", values))] if values is not None else []
    listed = []
    for key, value in values.items():
        if key == "params" and isinstance(value, dict):
            listed.extend(
                (str(PARAM_LABELS.get(k, k)), audit_value(k, v))
                for k, v in value.items()
            )
        else:
            name = AUDIT_KEYS.get(key) or PARAM_LABELS.get(key) or key
            listed.append((str(name), audit_value(key, value)))
    return listed


def event_source(source):
    """Word an event's source; "console:<login>" names the operator."""
    if source and source.startswith("console:"):
        return _("console (%(login)s)", login=source.split(":", 1)[1])
    return EVENT_SOURCES.get(source, source)


DELIVERY_KINDS = {
    "credit": _l("credit"),
    "reversal": _l("reversal"),
    "refund": _l("money refund"),
}
DELIVERY_STATES = {
    "pending": _l("waiting to be sent"),
    "sending": _l("being sent"),
    "done": _l("delivered"),
    "failed": _l("refused by the billing"),
    "attention": _l("needs a person"),
}
