"""The console's wording of codes: refusals, kinds, refund states, parameters."""

from flask_babel import lazy_gettext as _l

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
