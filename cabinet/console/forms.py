"""The console's forms, and the check that a posted button's form is still fresh."""

from functools import wraps

from flask import abort, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from .. import params as module_params
from ..models import ModuleInstance
from ..webforms import Form
from .wording import PARAM_LABELS, PAYATTR_LABELS, TAXMODE_LABELS, VAT_LABELS

FLAG_PARAMS = (
    "autopay_weekly",
    "autopay_monthly",
    "autopay_automatic",
    "fiscal",
    "sbp",
    "sbp_autopay",
)


class OperatorLoginForm(Form):
    """An operator's login and password."""

    login = StringField(_l("Login"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(max=200)]
    )


class ActionForm(Form):
    """A button that changes something: only the CSRF token travels."""


def fresh_form_required(view):
    """Answer 400 to a POST whose button form has expired (its CSRF token is stale)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        # A GET only shows the page; the same view may take the POST that acts.
        if request.method == "POST" and not ActionForm().validate_on_submit():
            abort(400, _("The form has expired. Reload the page and try again."))
        return view(*args, **kwargs)

    return wrapped


class LinkForm(Form):
    """The module instance a contract pays through."""

    instance = SelectField(_l("Module instance"), validators=[Optional()])

    @classmethod
    def of(cls, contract, formdata=None):
        """A form offering every instance, the contract's own chosen."""
        form = cls(
            formdata=formdata,
            instance=contract.instance.code if contract.instance_id else "",
        )
        form.instance.choices = [("", _("— not linked —"))] + [
            (i.code, f"{i.name} ({i.code})")
            for i in ModuleInstance.select().order_by(ModuleInstance.code)
        ]
        return form


class RefundForm(Form):
    """How much to refund; empty is all that is left."""

    amount = StringField(_l("Amount, ₽"), validators=[Optional(), Length(max=20)])


class InstanceForm(Form):
    """A new module instance: its code (in URLs) and its name."""

    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])


class ConfigurationForm(Form):
    """A configuration: its name and parameters; password and login are write-only."""

    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    shop_id = StringField(PARAM_LABELS["shop_id"], validators=[DataRequired()])
    login = PasswordField(PARAM_LABELS["login"])  # secret: never sent back
    password = PasswordField(PARAM_LABELS["password"])
    gateway_url = StringField(PARAM_LABELS["gateway_url"])
    callback_fields = StringField(PARAM_LABELS["callback_fields"])
    lifetime = StringField(PARAM_LABELS["lifetime"])
    min_amount = StringField(PARAM_LABELS["min_amount"])
    max_amount = StringField(PARAM_LABELS["max_amount"])
    autopay_weekly = BooleanField(PARAM_LABELS["autopay_weekly"])
    autopay_monthly = BooleanField(PARAM_LABELS["autopay_monthly"])
    autopay_automatic = BooleanField(PARAM_LABELS["autopay_automatic"])
    autopay_retry_days = StringField(PARAM_LABELS["autopay_retry_days"])
    auto_threshold = StringField(PARAM_LABELS["auto_threshold"])
    auto_target = StringField(PARAM_LABELS["auto_target"])
    fiscal = BooleanField(PARAM_LABELS["fiscal"])
    fiscal_gateway_url = StringField(PARAM_LABELS["fiscal_gateway_url"])
    fiscal_taxmode = SelectField(
        PARAM_LABELS["fiscal_taxmode"],
        choices=list(TAXMODE_LABELS.items()),
        validate_choice=False,
    )
    fiscal_vat = SelectField(
        PARAM_LABELS["fiscal_vat"],
        choices=list(VAT_LABELS.items()),
        validate_choice=False,
    )
    fiscal_payattr = SelectField(
        PARAM_LABELS["fiscal_payattr"],
        choices=list(PAYATTR_LABELS.items()),
        default="3",
    )
    fiscal_lineattr = SelectField(
        PARAM_LABELS["fiscal_lineattr"],
        choices=[(code, code) for code in module_params.LINEATTRS],
        default="10",
        validate_choice=False,
    )
    fiscal_line = StringField(PARAM_LABELS["fiscal_line"])
    fiscal_ffd = SelectField(
        PARAM_LABELS["fiscal_ffd"],
        choices=[("1.2", "1.2"), ("1.05", "1.05")],
        validate_choice=False,
    )
    fiscal_place = StringField(PARAM_LABELS["fiscal_place"])
    sbp = BooleanField(PARAM_LABELS["sbp"])
    sbp_autopay = BooleanField(PARAM_LABELS["sbp_autopay"])

    @classmethod
    def filled(cls, configuration, **values):
        """A form holding a configuration's parameters, never its secrets."""
        params = {
            k: v
            for k, v in configuration.params.items()
            if k in PARAM_LABELS and k not in module_params.SECRET_PARAMS
        }
        params.update({k: params.get(k) == "yes" for k in FLAG_PARAMS})
        return cls(**params, **values)

    def params(self):
        """Return the typed parameters; empty fields fall back to their defaults."""
        values = {key: "yes" if self[key].data else "no" for key in FLAG_PARAMS}
        values.update(
            {
                key: self[key].data.strip()
                for key in PARAM_LABELS
                if key not in FLAG_PARAMS and (self[key].data or "").strip()
            }
        )
        return values

    def show_error(self, error):
        """Put a cabinet.params message, translated, under its field (or the name's)."""
        target = self[error.key] if error.key in PARAM_LABELS else self.name
        target.errors = [*target.errors, _(error.message, **error.values)]


class AutopayChargeForm(Form):
    """A manual charge in automatic mode: how much and why."""

    amount = StringField(_l("Amount, ₽"), validators=[DataRequired(), Length(max=20)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=300)])


class ConnectorForm(Form):
    """A billing connector: its name, kind and parameters; secrets write-only."""

    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=64)])
    kind = SelectField(
        _l("Kind"),
        choices=[("osmp", "OSMP"), ("webhook", "Standard Webhooks")],
        default="osmp",
    )
    url = StringField(_l("URL"), validators=[DataRequired(), Length(max=500)])
    login = StringField(_l("Login (OSMP)"), validators=[Length(max=200)])
    password = PasswordField(_l("Password (OSMP)"), validators=[Length(max=200)])
    check_first = SelectField(
        _l("Check before pay (OSMP)"),
        choices=[("no", _l("no")), ("yes", _l("yes"))],
        default="no",
    )
    cancel = SelectField(
        _l("Cancel reversals (OSMP)"),
        choices=[("no", _l("no")), ("yes", _l("yes"))],
        default="no",
    )
    secret = PasswordField(_l("Secret whsec_… (webhook)"), validators=[Length(max=200)])
    events = StringField(_l("Events (webhook)"), validators=[Length(max=200)])
    timeout = StringField(_l("Timeout, s"), validators=[Length(max=10)])
    concurrency = StringField(_l("Concurrency"), validators=[Length(max=10)])
    is_active = BooleanField(_l("Active"), default=True)


class DeliveryDoneForm(Form):
    """Why a delivery is marked done by hand."""

    comment = StringField(
        _l("What was done in the billing"),
        validators=[DataRequired(), Length(max=500)],
    )


class ReaddressForm(Form):
    """The corrected account a delivery goes to."""

    account = StringField(_l("Account"), validators=[DataRequired(), Length(max=64)])


class ContractImportForm(Form):
    """A contracts CSV from the billing, and how to take it."""

    file = FileField(_l("CSV file"), validators=[FileRequired()])
    dry_run = BooleanField(_l("Dry run: check and report, write nothing"))
    partial = BooleanField(_l("Write the good rows even if some are refused"))
