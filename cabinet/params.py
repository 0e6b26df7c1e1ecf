"""The parameters of a module configuration: names, defaults, validation, secrecy."""

import hashlib
import hmac
import re
from decimal import Decimal

from flask import current_app, has_app_context
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .money import AmountError, format_wire, parse_amount
from .uniteller.client import DEFAULT_GATEWAY_URL

CALLBACK_FIELD_NAMES = {
    "BillNumber",
    "ApprovalCode",
    "Total",
    "Balance",
    "Customer_IDP",
    "Card_IDP",
    "CardNumber",
    "PaymentType",
    "ECI",
    "AcquirerID",
    "IssuerName",
    "EMoneyType",
    "Token_IDP",
}
# Parameters never shown on a page, in a log or in `config show`.
# The API login counts too: with the password it opens /results/ and /unblock/.
SECRET_PARAMS = {"password", "login"}


def N_(message):
    """Mark a message for the catalogue; the console translates it when it shows it."""
    return message


class ParamError(ValueError):
    """A configuration parameter with an unknown name or a bad value.

    `message` % `values` is the English text (the CLI prints it); `key` names the
    parameter, so the console can put the translated message under its field.
    """

    def __init__(self, message, key=None, **values):
        self.message, self.key, self.values = message, key, values
        text = message % values if values else message
        super().__init__(f"{key}: {text}" if key else text)


def _text(max_length):
    def parse(value):
        value = value.strip()
        if len(value) > max_length:
            raise ParamError(N_("longer than %(count)d characters"), count=max_length)
        return value

    return parse


def _shop_id(value):
    value = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
        raise ParamError(N_("letters, digits and '-' only, e.g. 00009876"))
    return value


# Uniteller's payment hosts (v1.43, 4.1.8): wpay without fiscal receipts, fpay
# with them, upay for contactless wallets. Anything else (the sandbox, a
# merchant's own pay.<domain> of 4.1.8) must be named in UNITELLER_EXTRA_GATEWAYS.
UNITELLER_GATEWAYS = (
    "https://wpay.uniteller.ru",
    "https://fpay.uniteller.ru",
    "https://upay.uniteller.ru",
)

# Plain http is for the sandbox and tests only: loopback, or a name under the
# reserved .test and .localhost domains (RFC 6761), which never leave the box.
LOCAL_HOST = re.compile(
    r"(localhost|127(\.\d{1,3}){3}|\[::1\]|.+\.(test|localhost))", re.IGNORECASE
)
DEFAULT_PORTS = {"http": 80, "https": 443}
AN_URL = N_("an http(s) URL, e.g. https://wpay.uniteller.ru")
BARE_ORIGIN = N_("only scheme://host[:port]: no user name, path, query or fragment")


def _bare_origin(value):
    """Parse a gateway address as requests will; return (scheme, host, origin).

    requests builds its connection from urllib3's parse_url, so that parser, and
    nothing else, decides what the address means (urlparse reads
    "http://169.254.169.254\\@x.test" as host x.test; urllib3 connects to
    169.254.169.254). Only a bare origin passes: no user, path, query or fragment.
    """
    value = value.strip()
    # A backslash, a space or a control character reads differently in each
    # parser (and in browsers): none belongs in an origin.
    if not value.isascii() or any(
        c == "\\" or c.isspace() or not c.isprintable() for c in value
    ):
        raise ParamError(BARE_ORIGIN)
    try:
        url = parse_url(value)
    except LocationParseError:
        raise ParamError(AN_URL) from None
    if url.scheme not in DEFAULT_PORTS or not url.host:
        raise ParamError(AN_URL)
    if (
        url.auth is not None
        or url.path not in (None, "", "/")
        or url.query is not None
        or url.fragment is not None
    ):
        raise ParamError(BARE_ORIGIN)
    port = "" if url.port in (None, DEFAULT_PORTS[url.scheme]) else f":{url.port}"
    return url.scheme, url.host, f"{url.scheme}://{url.host}{port}"


def gateway_origin(value):
    """Return a gateway address as the origin requests connects to, or raise."""
    return _bare_origin(value)[2]


def allowed_gateways():
    """Return the gateway origins allowed: Uniteller's and UNITELLER_EXTRA_GATEWAYS'."""
    allowed = set(UNITELLER_GATEWAYS)
    extra = ""
    if has_app_context():
        extra = current_app.config.get("UNITELLER_EXTRA_GATEWAYS", "")
    for item in extra.split(","):
        try:
            allowed.add(gateway_origin(item))
        except ParamError:
            continue  # not an origin: no gateway address could match it anyway
    return allowed


def _url(value):
    scheme, host, origin = _bare_origin(value)
    if scheme == "http" and not LOCAL_HOST.fullmatch(host):
        raise ParamError(
            N_(
                "https is required outside the sandbox (plain http only "
                "for localhost, 127.0.0.1 or a *.test host)"
            )
        )
    if origin not in allowed_gateways():
        raise ParamError(
            N_(
                "not an address of Uniteller (%(known)s) nor one named in "
                "UNITELLER_EXTRA_GATEWAYS"
            ),
            known=", ".join(UNITELLER_GATEWAYS),
        )
    return origin


def _seconds(value):
    value = value.strip()
    if not value.isdigit() or not 0 < int(value) <= 86400 * 30:
        raise ParamError(N_("a whole number of seconds, greater than 0"))
    return value


def _amount(value):
    try:
        kopecks = parse_amount(value)
    except AmountError as exc:
        if str(exc) == "not_positive":
            raise ParamError(N_("must be greater than 0")) from None
        raise ParamError(N_("an amount in roubles, e.g. 100.00")) from exc
    return format_wire(kopecks)


# Uniteller refuses a longer CallbackFields on its payment page (v1.43, Table 2
# #16): "BillNumber ApprovalCode Total", the default, is exactly this long.
CALLBACK_FIELDS_MAX = 29


def _callback_fields(value):
    names = value.split()
    unknown = [n for n in names if n not in CALLBACK_FIELD_NAMES]
    if unknown:
        raise ParamError(
            N_("unknown field %(field)s; known: %(known)s"),
            field=repr(unknown[0]),
            known=", ".join(sorted(CALLBACK_FIELD_NAMES)),
        )
    joined = " ".join(names)
    if len(joined) > CALLBACK_FIELDS_MAX:
        raise ParamError(
            N_("at most %(limit)d characters with the spaces (Uniteller's limit)"),
            limit=CALLBACK_FIELDS_MAX,
        )
    return joined


def _flag(value):
    value = value.strip().lower()
    if value in ("1", "yes", "true", "on"):
        return "yes"
    if value in ("0", "no", "false", "off", ""):
        return "no"
    raise ParamError(N_("yes or no"))


def _days(value):
    value = value.strip()
    if not value.isdigit() or not 0 <= int(value) <= 30:
        raise ParamError(N_("a whole number of days from 0 to 30"))
    return value


def _optional_amount(value):
    return "" if not value.strip() else _amount(value)


def _choice(*allowed):
    """A value out of a closed set of Uniteller's codes (given as strings)."""

    def parse(value):
        value = value.strip()
        if value not in allowed:
            raise ParamError(N_("one of %(allowed)s"), allowed=", ".join(allowed))
        return value

    return parse


def _optional_choice(*allowed):
    choice = _choice(*allowed)
    return lambda value: "" if not value.strip() else choice(value)


# A fiscal drive stores text in code page 866: a receipt line's name may hold
# only characters it has (fiscal 02.1.18, Appendix 1, note 1), at most 128.
FISCAL_LINE_MAX = 128
# The longest contract number a line template is checked with when it is saved.
FISCAL_LINE_SAMPLE = "0" * 20


def cp866_only(text):
    """Return the characters of `text` code page 866 cannot hold, in order."""
    return [c for c in dict.fromkeys(text) if not _in_cp866(c)]


def _in_cp866(char):
    try:
        char.encode("cp866")
    except UnicodeEncodeError:
        return False
    return char.isprintable()


def render_fiscal_line(template, contract_number):
    """Fill a receipt line template with a contract number."""
    return template.replace("{contract}", contract_number)


def _fiscal_line(value):
    value = " ".join(value.split())
    if not value:
        raise ParamError(N_("must not be empty"))
    if "{" in value.replace("{contract}", "") or "}" in value.replace("{contract}", ""):
        raise ParamError(N_("the only placeholder is {contract}"))
    bad = cp866_only(value)
    if bad:
        raise ParamError(
            N_("characters a fiscal drive cannot store (CP866): %(chars)s"),
            chars=" ".join(repr(c) for c in bad[:5]),
        )
    if len(render_fiscal_line(value, FISCAL_LINE_SAMPLE)) > FISCAL_LINE_MAX:
        raise ParamError(
            N_(
                "longer than %(count)d characters with a 20-digit contract number "
                "in place of {contract}"
            ),
            count=FISCAL_LINE_MAX,
        )
    return value


def _fiscal_place(value):
    value = value.strip()
    if not value:
        return ""
    if len(value) > 256 or not re.fullmatch(r"https?://[^\s]+", value):
        raise ParamError(
            N_(
                "the site's address as registered with the tax office, e.g. "
                "https://pay.example.net"
            )
        )
    return value


# Fiscal 02.1.18 Appendices 4-7: the codes a receipt may carry.
TAXMODES = ("0", "1", "2", "4", "5")
VAT_RATES = ("-1", "0", "5", "7", "10", "22", "105", "107", "110", "122")
PAYATTRS = ("1", "2", "3", "4", "5", "6", "7")
LINEATTRS = tuple(str(n) for n in [*range(1, 20), 30, 31, 32, 33])
# A payment before the service is rendered (full or partial prepayment, an
# advance) carries VAT at the calculated rate (tax code art. 164 p. 4).
PREPAYMENT_PAYATTRS = ("1", "2", "3")
CALCULATED_RATE = {"5": "105", "7": "107", "10": "110", "22": "122"}
# VAT of 5 % and 7 % exists only under the simplified system (USN).
USN_ONLY_RATES = ("5", "7", "105", "107")
DEFAULT_FISCAL_GATEWAY_URL = "https://fpay.uniteller.ru"


# name: (parser, default, help)
PARAMS = {
    "shop_id": (_shop_id, "", "Uniteller Point ID (Shop_IDP)"),
    "login": (_text(64), "", "login for server-to-server APIs"),
    "password": (_text(512), "", "the shared secret from Uniteller's cabinet"),
    "gateway_url": (_url, DEFAULT_GATEWAY_URL, "Uniteller's host, or the sandbox"),
    "callback_fields": (
        _callback_fields,
        "BillNumber ApprovalCode Total",
        "extra callback fields, in signing order",
    ),
    "lifetime": (_seconds, "300", "seconds the payment form lives"),
    "min_amount": (_amount, "1.00", "smallest payment, roubles"),
    "max_amount": (_amount, "100000.00", "largest payment, roubles"),
    "autopay_weekly": (_flag, "no", "subscribers may set up weekly autopay"),
    "autopay_monthly": (_flag, "no", "subscribers may set up monthly autopay"),
    "autopay_automatic": (_flag, "no", "subscribers may choose the automatic mode"),
    "autopay_retry_days": (_days, "3", "days a softly declined charge is retried"),
    "auto_threshold": (
        _optional_amount,
        "",
        "automatic mode: top up when the balance "
        "is below this (empty: no built-in policy)",
    ),
    "auto_target": (_optional_amount, "", "automatic mode: top up to this balance"),
    "fiscal": (_flag, "no", "send a 54-FZ receipt with every payment and refund"),
    "sbp": (_flag, "no", "subscribers may pay by SBP as well as by card (fiscal=yes)"),
    "sbp_autopay": (
        _flag,
        "no",
        "subscribers may bind an SBP account for autopay (sbp=yes)",
    ),
    "fiscal_gateway_url": (
        _url,
        DEFAULT_FISCAL_GATEWAY_URL,
        "Uniteller's host of payments with fiscalization, or the sandbox",
    ),
    "fiscal_taxmode": (
        _optional_choice(*TAXMODES),
        "",
        "tax system: 0 OSN, 1 USN income, 2 USN income-expense, 4 ESHN, 5 patent",
    ),
    "fiscal_vat": (
        _optional_choice(*VAT_RATES),
        "",
        "VAT of the line: -1 none, 0, 5, 7, 10, 22, 105, 107, 110, 122",
    ),
    "fiscal_payattr": (
        _choice(*PAYATTRS),
        "3",
        "payment method (1 full prepayment, 3 advance, 4 full payment, ...)",
    ),
    "fiscal_lineattr": (
        _choice(*LINEATTRS),
        "10",
        "subject of payment (4 service, 10 advance/prepayment, ...)",
    ),
    "fiscal_line": (
        _fiscal_line,
        "Оплата услуг связи по договору {contract}",
        "the receipt line's name; {contract} is the contract number",
    ),
    "fiscal_ffd": (_choice("1.05", "1.2"), "1.2", "fiscal document format"),
    "fiscal_place": (
        _fiscal_place,
        "",
        "the site address registered as the place of settlement",
    ),
}


def assignments_dict(assignments):
    """Turn ["key=value", …] into a dict, unvalidated; ParamError if one is not K=V."""
    result = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise ParamError(N_("%(item)s: expected KEY=VALUE"), item=repr(item))
        result[key.strip()] = value
    return result


def parse_assignments(assignments):
    """Turn ["key=value", …] into a validated dict; raise ParamError with the reason."""
    return validate(assignments_dict(assignments))


def validate(params):
    """Validate parameters by name, then together; return them normalised."""
    clean = {}
    for key, value in params.items():
        if key not in PARAMS:
            raise ParamError(
                N_("unknown parameter %(name)s; known: %(known)s"),
                name=repr(key),
                known=", ".join(PARAMS),
            )
        parser = PARAMS[key][0]
        try:
            clean[key] = parser(str(value))
        except ParamError as exc:
            raise ParamError(exc.message, key, **exc.values) from None
    # Together, with the defaults of what was not given: that is what runs.
    p = effective(clean)
    if Decimal(p["min_amount"]) > Decimal(p["max_amount"]):
        raise ParamError(
            N_("greater than the maximum payment (max_amount)"), "min_amount"
        )
    if bool(p["auto_threshold"]) != bool(p["auto_target"]):
        raise ParamError(
            N_(
                "give both the threshold (auto_threshold) and the "
                "target (auto_target), or neither"
            ),
            "auto_target",
        )
    if p["auto_target"]:
        if Decimal(p["auto_threshold"]) >= Decimal(p["auto_target"]):
            raise ParamError(
                N_("must be above the threshold (auto_threshold)"), "auto_target"
            )
        if Decimal(p["auto_target"]) > Decimal(p["max_amount"]):
            raise ParamError(
                N_(
                    "above the maximum payment (max_amount): its "
                    "charges would be refused"
                ),
                "auto_target",
            )
        if p["autopay_automatic"] != "yes":
            raise ParamError(
                N_("a top-up policy needs the automatic mode (autopay_automatic=yes)"),
                "auto_target",
            )
    _validate_fiscal(p)
    _validate_sbp(p)
    return clean


def _validate_sbp(p):
    """Refuse SBP where Uniteller cannot take it (v1.43 §4.1.9: fiscal form only)."""
    if p["sbp"] == "yes" and p["fiscal"] != "yes":
        raise ParamError(
            N_("Uniteller takes SBP only with 54-FZ receipts (fiscal=yes)"), "sbp"
        )
    if p["sbp_autopay"] == "yes" and p["sbp"] != "yes":
        raise ParamError(N_("SBP autopay needs SBP payments (sbp=yes)"), "sbp_autopay")


def _validate_fiscal(p):
    """Refuse a fiscal profile that is incomplete or contradicts itself."""
    if p["fiscal"] != "yes":
        return
    for key, what in (
        ("fiscal_taxmode", N_("the tax system is required for receipts")),
        ("fiscal_vat", N_("the VAT rate is required for receipts")),
    ):
        if not p[key]:
            raise ParamError(what, key)
    if p["fiscal_ffd"] == "1.2" and not p["fiscal_place"]:
        raise ParamError(
            N_("format 1.2 needs the place of settlement (the site's address)"),
            "fiscal_place",
        )
    vat, taxmode = p["fiscal_vat"], p["fiscal_taxmode"]
    if vat in USN_ONLY_RATES and taxmode not in ("1", "2"):
        raise ParamError(
            N_(
                "VAT of 5 or 7 percent exists only under the simplified system (1 or 2)"
            ),
            "fiscal_vat",
        )
    if taxmode == "5" and vat != "-1":
        raise ParamError(
            N_("under the patent system there is no VAT (-1)"), "fiscal_vat"
        )
    if p["fiscal_payattr"] in PREPAYMENT_PAYATTRS and vat in CALCULATED_RATE:
        raise ParamError(
            N_("a prepayment or an advance takes the calculated rate %(rate)s"),
            "fiscal_vat",
            rate=CALCULATED_RATE[vat],
        )
    if p["fiscal_payattr"] == "3" and p["fiscal_lineattr"] != "10":
        raise ParamError(
            N_("an advance (payment method 3) is a line of subject 10"),
            "fiscal_lineattr",
        )


def effective(params):
    """Return the parameters with defaults filled in."""
    merged = {key: spec[1] for key, spec in PARAMS.items()}
    merged.update(params or {})
    return merged


def redacted(params):
    """Return the parameters with secrets masked, for display."""
    return {
        key: ("***" if key in SECRET_PARAMS and value else value)
        for key, value in params.items()
    }


def changes(before, after):
    """List (key, before, after) of the parameters that differ, defaults filled in."""
    old, new = effective(before), effective(after)
    return [(key, old[key], new[key]) for key in PARAMS if old[key] != new[key]]


def fingerprinted(params):
    """Return the parameters with each secret replaced by a short fingerprint."""
    return {
        key: (fingerprint(value) if key in SECRET_PARAMS and value else value)
        for key, value in params.items()
    }


def fingerprint(secret):
    """Name a secret by a keyed hash (HMAC with SECRET_KEY): a change shows, the
    secret does not (a plain hash of a 4-digit login is found by trying them all)."""
    key = current_app.config["SECRET_KEY"].encode()
    return "hmac:" + hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()[:16]


def missing_for_payments(params):
    """Name the parameters a configuration lacks to take payments.

    The login is the results API's (/results/): without it no payment's status
    can be checked, so one whose callback is lost would stay open for ever.
    """
    merged = effective(params)
    return [key for key in ("shop_id", "login", "password") if not merged.get(key)]
