"""The operator console: contracts, transactions, refunds, instances, tasks, audit."""

import uuid
from datetime import UTC, timedelta
from functools import wraps

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from . import (
    audit,
    autopay,
    manage,
    monitor,
    payments,
    refunds,
    schedule,
    status_check,
)
from . import params as module_params
from .auth import LoginThrottle, OperatorUser, end_session, own_path, start_session
from .db import write_unit
from .errors import CabinetError, NotFound
from .models import (
    STATUSES,
    AuditEntry,
    ConfigurationVersion,
    Contract,
    ModuleConfiguration,
    ModuleInstance,
    Operator,
    Refund,
    TaskRun,
    Transaction,
    TransactionEvent,
    status_label,
    utcnow,
)
from .money import AmountError, format_human, format_wire, parse_amount
from .reconcile import reconcile
from .uniteller.client import UnitellerError
from .web import (
    local_midnight_utc,
    local_timezone,
    local_today,
    page_or_fragment,
    parse_date,
    parse_period,
    wants_fragment,
)
from .wording import AMOUNT_ERRORS, WEEKDAYS, out_of_range

bp = Blueprint("console", __name__, url_prefix="/console")
bp.record_once(
    lambda state: monitor.register_functions(state.app.extensions["database"])
)

STATUS_FILTERS = ("success", *STATUSES)
MONITOR_DAYS = 7
LONGEST_PERIOD = timedelta(days=366)
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
DIFFERENCES = {
    "missing_credit": _l("paid at Uniteller, not credited here"),
    "not_successful_there": _l("credited here, not successful at Uniteller"),
    "amount_mismatch": _l("amounts differ"),
    "unknown_here": _l("unknown here"),
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
}
FLAG_PARAMS = ("autopay_weekly", "autopay_monthly", "autopay_automatic")
VERSION_ACTIONS = {
    "create": _l("created"),
    "edit": _l("edited"),
    "copy": _l("copied"),
    "activate": _l("activated"),
    "rollback": _l("rolled back to"),
}


# -- who may come in --------------------------------------------------------------


def operator_required(admin=False):
    """Let only operators in (only admins with admin=True); others get 403."""

    def decorate(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not getattr(current_user, "is_operator", False):
                abort(403, _("The console is for the provider's staff only."))
            if admin and current_operator().role != "admin":
                abort(403, _("Only an administrator may do this."))
            return view(*args, **kwargs)

        return wrapped

    return decorate


def current_operator():
    """Return the logged-in operator (the view must require an operator)."""
    return current_user.operator


@bp.context_processor
def console_helpers():
    """Give console templates the operator's role and the wording of codes."""
    is_admin = bool(
        getattr(current_user, "is_operator", False)
        and current_user.operator.role == "admin"
    )
    return {
        "is_admin": is_admin,
        "refund_statuses": REFUND_STATUSES,
        "secret_params": module_params.SECRET_PARAMS,
        "param_labels": PARAM_LABELS,
        "kind_labels": KIND_LABELS,
        "version_actions": VERSION_ACTIONS,
    }


class OperatorLoginForm(FlaskForm):
    """An operator's login and password."""

    login = StringField(_l("Login"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(max=200)]
    )


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token travels."""


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the console's login form; log an operator in."""
    form = OperatorLoginForm()
    if form.validate_on_submit():
        name = form.login.data.strip()
        throttle = LoginThrottle("o", name)
        if throttle.blocked():
            form.login.errors.append(throttle.lockout_message())
            return render_template("console/login.html", form=form), 429
        operator = Operator.get_or_none(Operator.login == name)
        if (
            operator
            and operator.is_active
            and check_password_hash(operator.password_hash, form.password.data)
        ):
            throttle.succeeded()
            next_path = own_path(request.args.get("next"))
            start_session(OperatorUser(operator))
            return redirect(next_path or url_for("console.contracts"))
        throttle.failed()
        form.password.errors.append(_l("Wrong login or password."))
        return render_template("console/login.html", form=form), 401
    return render_template("console/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    """Log the operator out."""
    end_session()
    return redirect(url_for("console.login"))


@bp.route("/")
@operator_required()
def index():
    """Start at the contracts."""
    return redirect(url_for("console.contracts"))


# -- contracts --------------------------------------------------------------------


def _page_number():
    """Read ?page= (1 and up); 400 otherwise."""
    page = request.args.get("page", "1")
    if not page.isdigit() or int(page) < 1:
        abort(400, "page must be a positive number")
    return int(page)


@bp.route("/contracts")
@operator_required()
def contracts():
    """List contracts, searched by number or name, paginated."""
    search = request.args.get("q", "").strip()[:100]
    query = monitor.contracts_matching(search) if search else Contract.select()
    page = _page_number()
    size = current_app.config["PAGE_SIZE"]
    rows = list(
        query.order_by(Contract.number).limit(size + 1).offset((page - 1) * size)
    )
    return page_or_fragment(
        "console/contracts.html",
        "console/_contract-list.html",
        rows=rows[:size],
        has_next=len(rows) > size,
        page=page,
        search=search,
    )


class LinkForm(FlaskForm):
    """The module instance a contract pays through."""

    instance = SelectField(_l("Module instance"), validators=[Optional()])


def _link_form(contract, formdata=None):
    form = LinkForm(
        formdata=formdata,
        instance=contract.instance.code if contract.instance_id else "",
    )
    form.instance.choices = [("", _("— not linked —"))] + [
        (i.code, f"{i.name} ({i.code})")
        for i in ModuleInstance.select().order_by(ModuleInstance.code)
    ]
    return form


def _contract_filters():
    """Read the Uniteller tab's filters: status and period."""
    status = request.args.get("status", "")
    if status and status not in STATUS_FILTERS:
        abort(400, "unknown status")
    start, end = parse_period(request.args)
    filters = {k: request.args.get(k, "") for k in ("status", "from", "to")}
    return status, start, end, filters


def _contract_context(contract, link_form=None):
    status, start, end, filters = _contract_filters()
    rows, following = monitor.page(
        Transaction.history(contract, status or None, start, end),
        current_app.config["PAGE_SIZE"],
        _cursor(),
    )
    return {
        "contract": contract,
        "rows": rows,
        "following": following,
        "filters": filters,
        "statuses": STATUS_FILTERS,
        "link_form": link_form or _link_form(contract),
        "ledger_balance": payments.ledger_balance(contract),
        "charge_form": AutopayChargeForm(),
        "action_form": ActionForm(),
        "weekdays": WEEKDAYS,
        **autopay.summary(contract, charges=10),
    }


def _cursor():
    """Read ?after= (a keyset cursor); 400 if it is not one."""
    cursor = request.args.get("after", "")
    if cursor:
        try:
            monitor.decode_cursor(cursor)
        except ValueError:
            abort(400, "after: not a cursor")
    return cursor or None


@bp.route("/contracts/<number>")
@operator_required()
def contract(number):
    """Show a contract: balance, module instance, its Uniteller transactions."""
    found = manage.get_contract(number)
    return page_or_fragment(
        "console/contract.html",
        "console/_contract-transactions.html",
        **_contract_context(found),
    )


@bp.route("/contracts/<number>/instance", methods=["POST"])
@operator_required(admin=True)
def link_instance(number):
    """Link a contract to a module instance, or unlink it (audited)."""
    found = manage.get_contract(number)
    form = _link_form(found, request.form)
    if not form.validate():
        return render_template(
            "console/contract.html", **_contract_context(found, form)
        ), 400
    code = form.instance.data or None
    instance = manage.get_instance(code) if code else None
    with write_unit():
        before = found.instance.code if found.instance_id else None
        manage.link_contract(found, instance)
        audit.record(
            current_operator(),
            "contract.link",
            "contract",
            found.number,
            {"instance": before},
            {"instance": code},
        )
    flash(_("Module instance saved."), "ok")
    return redirect(url_for("console.contract", number=number))


# -- one transaction --------------------------------------------------------------


class RefundForm(FlaskForm):
    """How much to refund; empty is all that is left."""

    amount = StringField(_l("Amount, ₽"), validators=[Optional(), Length(max=20)])


def _transaction(order_id):
    found = Transaction.by_order_id(order_id)
    if found is None:
        abort(404, _("No transaction with this order id."))
    return found


def _transaction_page(transaction, refund_form=None, status=200):
    events = list(
        TransactionEvent.select()
        .where(TransactionEvent.order_id == transaction.order_id)
        .order_by(TransactionEvent.created_at, TransactionEvent.id)
    )
    refund_list = list(
        Refund.select().where(Refund.transaction == transaction).order_by(Refund.id)
    )
    return render_template(
        "console/transaction.html",
        transaction=transaction,
        events=events,
        refunds=refund_list,
        refundable=refunds.refundable(transaction),
        refund_form=refund_form or RefundForm(),
        action_form=ActionForm(),
    ), status


@bp.route("/transactions/<order_id>")
@operator_required()
def transaction(order_id):
    """Show a transaction with its full event history and refunds."""
    return _transaction_page(_transaction(order_id))


@bp.route("/transactions/<order_id>/check", methods=["POST"])
@operator_required()
def check(order_id):
    """Ask Uniteller about a transaction now and apply the answer (audited)."""
    found = _transaction(order_id)
    if not ActionForm().validate_on_submit():
        abort(400, _("The form has expired. Reload the page and try again."))
    before = {
        "status": found.status,
        "pending_refund": refunds.pending_refund(found) is not None,
    }
    error = None
    try:
        if refunds.pending_refund(found) is None and (
            found.status in payments.CHECKED_STATUSES
        ):
            stats = status_check.check_order(found.id)
            error = "; ".join(stats.notes) or None
        else:
            # A final status and any refund in flight: /results/ with the balance.
            refunds.recheck(found)
    except UnitellerError as exc:
        error = str(exc)
    found = Transaction.get_by_id(found.id)
    after = {
        "status": found.status,
        "pending_refund": refunds.pending_refund(found) is not None,
    }
    if error:
        after["error"] = error
    with write_unit():
        audit.record(
            current_operator(),
            "transaction.check",
            "transaction",
            order_id,
            before,
            after,
        )
    if error:
        flash(_("Uniteller did not answer: %(error)s", error=error), "error")
    else:
        flash(
            _("Status re-checked: %(status)s.", status=str(status_label(found.status))),
            "ok",
        )
    return redirect(url_for("console.transaction", order_id=order_id))


@bp.route("/transactions/<order_id>/refund", methods=["POST"])
@operator_required()
def refund(order_id):
    """Refund a credited transaction in full or in part through Uniteller (audited)."""
    found = _transaction(order_id)
    form = RefundForm()
    if not form.validate_on_submit():
        return _transaction_page(found, form, 400)
    amount = None
    if (form.amount.data or "").strip():
        try:
            amount = parse_amount(form.amount.data)
        except AmountError as exc:
            form.amount.errors.append(AMOUNT_ERRORS[str(exc)])
            return _transaction_page(found, form, 400)
    before = {"status": found.status, "refundable": refunds.refundable(found)}
    try:
        made = refunds.start_refund(found, amount, current_operator())
    except refunds.RefundRefused as exc:
        if exc.message == "too_much":
            form.amount.errors.append(
                _(
                    "At most %(left)s ₽ of this payment can be refunded.",
                    left=format_human(exc.details["left"]),
                )
            )
        else:
            form.amount.errors.append(REFUSALS[exc.message])
        return _transaction_page(found, form, 409)
    found = Transaction.get_by_id(found.id)
    with write_unit():
        audit.record(
            current_operator(),
            "transaction.refund",
            "transaction",
            order_id,
            before,
            {
                "status": found.status,
                "refund": made.id,
                "amount": made.amount,
                "refund_status": made.status,
                "error": made.error_message,
            },
        )
    amount_text = format_human(made.amount)
    if made.status == "done":
        flash(_("Refund of %(amount)s ₽ done.", amount=amount_text), "ok")
    elif made.status == "failed":
        flash(
            _(
                "Uniteller refused the refund: %(code)s %(message)s",
                code=made.error_code or "",
                message=made.error_message or "",
            ),
            "error",
        )
    else:
        flash(
            _(
                "Uniteller did not answer in time. The refund is in progress: "
                "re-check the status later."
            ),
            "error",
        )
    return redirect(url_for("console.transaction", order_id=order_id))


# -- the transaction monitor ------------------------------------------------------


def _monitor_filters():
    """Read the monitor's filters; the period defaults to the last 7 days."""
    today = local_today()
    first = parse_date(request.args, "from") or today - timedelta(days=MONITOR_DAYS - 1)
    last = parse_date(request.args, "to") or today
    if last < first:
        abort(400, _("The period ends before it starts."))
    if last - first > LONGEST_PERIOD:
        abort(400, _("The period is at most a year."))
    status = request.args.get("status", "")
    if status and status not in STATUS_FILTERS:
        abort(400, "unknown status")
    kind = request.args.get("kind", "")
    if kind and kind not in monitor.KINDS:
        abort(400, "unknown kind")
    filters = monitor.Filters(
        start=local_midnight_utc(first),
        end=local_midnight_utc(last + timedelta(1)),
        search=request.args.get("q", "").strip()[:100],
        status=status,
        kind=kind,
    )
    shown = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "q": filters.search,
        "status": status,
        "kind": kind,
    }
    return filters, shown, first, last


def _chosen_instance(args):
    """Return the instance ?instance= names, or the only one; None: ask which."""
    if args.get("instance"):
        return manage.get_instance(args["instance"])
    first_two = list(ModuleInstance.select().order_by(ModuleInstance.code).limit(2))
    return first_two[0] if len(first_two) == 1 else None


def _choose_instance(endpoint):
    """Ask which module instance a page is about, keeping the other parameters."""
    args = {k: v for k, v in request.args.items() if k != "instance"}
    return render_template(
        "console/choose-instance.html",
        endpoint=endpoint,
        args=args,
        instances=list(ModuleInstance.select().order_by(ModuleInstance.code)),
    )


@bp.route("/monitor")
@operator_required()
def monitor_page():
    """Show an instance's transactions of a period: filters and keyset pages."""
    instance = _chosen_instance(request.args)
    if instance is None:
        return _choose_instance("console.monitor_page")
    filters, shown, first, last = _monitor_filters()
    shown["instance"] = instance.code
    rows, following = monitor.page(
        monitor.selection(instance, filters), current_app.config["PAGE_SIZE"], _cursor()
    )
    context = {
        "rows": rows,
        "following": following,
        "filters": shown,
        "after": request.args.get("after", ""),
    }
    if wants_fragment() and request.headers.get("HX-Target") == "monitor-rows":
        # Paging: the totals and the chart above the rows stay as they are.
        response = make_response(
            render_template("console/_monitor-rows.html", **context)
        )
        response.vary.update(("HX-Request", "HX-Target"))
        return response
    # The totals and the chart come by a request of their own once the page is
    # shown (console.monitor_summary): counting a year of a big instance can
    # take longer than the rows, and the operator need not wait for it.
    response = page_or_fragment(
        "console/monitor.html",
        "console/_monitor-table.html",
        instance=instance,
        instances=list(ModuleInstance.select().order_by(ModuleInstance.code)),
        statuses=STATUS_FILTERS,
        kinds=monitor.KINDS,
        **context,
    )
    response.vary.add("HX-Target")
    return response


@bp.route("/monitor/summary")
@operator_required()
def monitor_summary():
    """Count the monitor's filtered set per status and chart its paid sums per day."""
    instance = _chosen_instance(request.args)
    if instance is None:
        abort(400, "which instance: ?instance=")
    filters, shown, first, last = _monitor_filters()
    shown["instance"] = instance.code
    per_status, series = monitor.summary(
        instance, filters, monitor.local_days(first, last, local_midnight_utc)
    )
    return page_or_fragment(
        "console/monitor-summary.html",
        "console/_monitor-summary.html",
        instance=instance,
        filters=shown,
        totals=per_status,
        total_count=sum(c for _, c, _ in per_status),
        total_sum=sum(s for _, _, s in per_status),
        chart=monitor.chart(series),
    )


@bp.route("/monitor.csv")
@operator_required()
def monitor_csv():
    """Stream the monitor's filtered set as CSV (UTF-8 with BOM, ';')."""
    instance = _chosen_instance(request.args)
    if instance is None:
        abort(400, _("Choose a module instance."))
    code = instance.code
    filters, shown, _first, _last = _monitor_filters()
    header = [
        _("Date"),
        _("Order"),
        _("Contract"),
        _("Name"),
        _("Kind"),
        _("Status"),
        _("Amount"),
        _("Bill number"),
        _("Approval code"),
        _("Response code"),
        _("Message"),
    ]
    lines = monitor.csv_chunks(instance, filters, local_timezone(), header)
    name = f"transactions-{code}-{shown['from']}-{shown['to']}.csv"
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- module instances and configurations ------------------------------------------


class ConfigurationForm(FlaskForm):
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


class InstanceForm(FlaskForm):
    """A new module instance: its code (in URLs) and its name."""

    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])


@bp.route("/instances", methods=["GET", "POST"])
@operator_required(admin=True)
def instances():
    """List the module instances; POST creates one (audited)."""
    form = InstanceForm()
    if form.validate_on_submit():
        try:
            with write_unit():
                made = manage.add_instance(
                    form.code.data.strip(), form.name.data.strip()
                )
                audit.record(
                    current_operator(),
                    "instance.create",
                    "instance",
                    made.code,
                    None,
                    {"name": made.name},
                )
        except manage.Conflict:
            form.code.errors.append(_("An instance with this code exists already."))
        except CabinetError:
            form.code.errors.append(_("Lower-case letters, digits, '-' and '_'."))
        else:
            flash(_("Module instance %(code)s created.", code=made.code), "ok")
            return redirect(url_for("console.instance", code=made.code))
    rows = list(ModuleInstance.select().order_by(ModuleInstance.code))
    return render_template("console/instances.html", instances=rows, form=form), (
        400 if form.errors else 200
    )


def _instance_page(instance, status=200, test=None):
    configurations = list(instance.configurations.order_by(ModuleConfiguration.name))
    return render_template(
        "console/instance.html",
        instance=instance,
        configurations=configurations,
        redacted=module_params.redacted,
        action_form=ActionForm(),
        test=test,
        previous=manage.previous_configuration(instance),
    ), status


@bp.route("/instances/<code>/configs")
@operator_required(admin=True)
def instance(code):
    """Show an instance's configurations: which is active, who made and activated it."""
    return _instance_page(manage.get_instance(code))


# The console's first URLs, from before the stable ones: their links still work.
@bp.route("/instances/<code>", defaults={"target": "console.instance"})
@bp.route("/instances/<code>/transactions", defaults={"target": "console.monitor_page"})
@bp.route(
    "/instances/<code>/transactions.csv", defaults={"target": "console.monitor_csv"}
)
@bp.route("/instances/<code>/reconcile", defaults={"target": "console.reconcile_page"})
@operator_required()
def moved(code, target):
    """Answer 301 from an old instance URL to its stable one, keeping the query."""
    if target == "console.instance":
        return redirect(url_for(target, code=code), 301)
    return redirect(
        url_for(target, **{**request.args.to_dict(), "instance": code}), 301
    )


def _save_configuration(form, instance, save, **shown):
    """Run a configuration form: save() in a write unit (returns the name saved),
    its refusals shown on the form (400), or back to the instance on success."""
    if form.validate_on_submit():
        try:
            with write_unit():
                name = save()
        except module_params.ParamError as exc:
            form.show_error(exc)
        except manage.Conflict:
            form.name.errors.append(_("A configuration with this name exists already."))
        except CabinetError as exc:
            form.name.errors.append(exc.message)
        else:
            flash(_("Configuration %(name)s saved.", name=name), "ok")
            return redirect(url_for("console.instance", code=instance.code))
    status = 400 if form.errors else 200
    return render_template(
        "console/configuration.html", form=form, instance=instance, **shown
    ), status


@bp.route("/instances/<code>/configs/new", methods=["GET", "POST"])
@operator_required(admin=True)
def configuration_new(code):
    """Create a configuration of an instance (audited)."""
    found = manage.get_instance(code)
    form = ConfigurationForm()

    def save():
        values = form.params()
        made = manage.add_configuration(
            found,
            form.name.data,
            [f"{k}={v}" for k, v in values.items()],
            who=current_operator().login,
        )
        audit.record(
            current_operator(),
            "configuration.create",
            "configuration",
            f"{code}/{made.name}",
            None,
            {"params": made.params},
        )
        return made.name

    return _save_configuration(form, found, save, configuration=None)


def _configuration(instance, config_id):
    found = ModuleConfiguration.get_or_none(
        ModuleConfiguration.id == config_id, ModuleConfiguration.instance == instance
    )
    if found is None:
        abort(404, _("No such configuration."))
    return found


@bp.route("/instances/<code>/configs/<int:config_id>", methods=["GET", "POST"])
@operator_required(admin=True)
def configuration_edit(code, config_id):
    """Edit a configuration's parameters; an empty password keeps it (audited)."""
    found = manage.get_instance(code)
    configuration = _configuration(found, config_id)
    form = ConfigurationForm.filled(configuration, name=configuration.name)
    form.name.data = configuration.name  # the name is the key: it does not change

    def save():
        saved = manage.update_configuration(
            configuration, form.params(), who=current_operator().login
        )
        after = {
            "params": saved.params,
            "password_changed": (
                saved.params.get("password") != configuration.params.get("password")
            ),
        }
        audit.record(
            current_operator(),
            "configuration.update",
            "configuration",
            f"{code}/{configuration.name}",
            {"params": configuration.params},
            after,
        )
        return configuration.name

    return _save_configuration(form, found, save, configuration=configuration)


@bp.route("/instances/<code>/configs/<int:config_id>/copy", methods=["GET", "POST"])
@operator_required(admin=True)
def configuration_copy(code, config_id):
    """Make a configuration from another; its password is copied unseen (audited)."""
    found = manage.get_instance(code)
    source = _configuration(found, config_id)
    form = ConfigurationForm.filled(source)
    if request.method == "GET":
        form.name.data = ""

    def save():
        made = manage.copy_configuration(
            source, form.name.data, form.params(), who=current_operator().login
        )
        audit.record(
            current_operator(),
            "configuration.copy",
            "configuration",
            f"{code}/{made.name}",
            {"from": source.name},
            {"params": made.params},
        )
        return made.name

    return _save_configuration(form, found, save, configuration=None, source=source)


@bp.route("/instances/<code>/configs/<int:config_id>/versions")
@operator_required(admin=True)
def configuration_versions(code, config_id):
    """List a configuration's versions: who changed it, when and how."""
    found = manage.get_instance(code)
    configuration = _configuration(found, config_id)
    versions = list(configuration.versions.order_by(ConfigurationVersion.number.desc()))
    return render_template(
        "console/versions.html",
        instance=found,
        configuration=configuration,
        versions=versions,
    )


def _version(configuration, name):
    """Read ?from= or ?to= as a version of the configuration; 404 if none."""
    number = request.args.get(name, "")
    if not number.isdigit():
        abort(400, f"{name}: a version number")
    found = ConfigurationVersion.get_or_none(
        ConfigurationVersion.configuration == configuration,
        ConfigurationVersion.number == int(number),
    )
    if found is None:
        abort(404, _("No such version."))
    return found


@bp.route("/instances/<code>/configs/<int:config_id>/diff")
@operator_required(admin=True)
def configuration_diff(code, config_id):
    """Show what changed between two versions of a configuration (?from=&to=)."""
    found = manage.get_instance(code)
    configuration = _configuration(found, config_id)
    before, after = _version(configuration, "from"), _version(configuration, "to")
    return render_template(
        "console/diff.html",
        instance=found,
        configuration=configuration,
        before=before,
        after=after,
        changes=module_params.changes(before.params, after.params),
        secrets=module_params.SECRET_PARAMS,
    )


@bp.route("/instances/<code>/configs/<int:config_id>/activate", methods=["POST"])
@operator_required(admin=True)
def configuration_activate(code, config_id):
    """Make a configuration the active one of its instance (audited)."""
    found = manage.get_instance(code)
    configuration = _configuration(found, config_id)
    if not ActionForm().validate_on_submit():
        abort(400, _("The form has expired. Reload the page and try again."))
    with write_unit():
        before = found.active_configuration()
        manage.activate_configuration(
            found, configuration.name, who=current_operator().login
        )
        audit.record(
            current_operator(),
            "configuration.activate",
            "instance",
            code,
            {"active": before.name if before else None},
            {"active": configuration.name},
        )
    flash(_("Configuration %(name)s is active.", name=configuration.name), "ok")
    return redirect(url_for("console.instance", code=code))


@bp.route("/instances/<code>/configs/rollback", methods=["POST"])
@operator_required(admin=True)
def configuration_rollback(code):
    """Activate again the configuration that was active before (audited)."""
    found = manage.get_instance(code)
    if not ActionForm().validate_on_submit():
        abort(400, _("The form has expired. Reload the page and try again."))
    with write_unit():
        before = found.active_configuration()
        try:
            restored = manage.roll_back(found, who=current_operator().login)
        except NotFound:
            abort(409, _("No configuration was active before this one."))
        audit.record(
            current_operator(),
            "configuration.rollback",
            "instance",
            code,
            {"active": before.name if before else None},
            {"active": restored.name},
        )
    flash(
        _("Rolled back: configuration %(name)s is active again.", name=restored.name),
        "ok",
    )
    return redirect(url_for("console.instance", code=code))


@bp.route("/instances/<code>/configs/<int:config_id>/test", methods=["POST"])
@operator_required(admin=True)
def configuration_test(code, config_id):
    """Ask /results/ for the last hour with a configuration's credentials (audited)."""
    found = manage.get_instance(code)
    configuration = _configuration(found, config_id)
    if not ActionForm().validate_on_submit():
        abort(400, _("The form has expired. Reload the page and try again."))
    end = utcnow().replace(tzinfo=UTC)
    test = {"configuration": configuration.name, "ok": True, "orders": 0, "error": ""}
    try:
        rows = status_check.ask(
            payments.client_for(configuration),
            status_check.results_spacing(configuration),
            status_check.Stats(),
            start=end - timedelta(hours=1),
            end=end,
        )
        test["orders"] = len(rows)
    except UnitellerError as exc:
        # Our errors name the path and Uniteller's words, never the password.
        test.update(ok=False, error=str(exc))
    with write_unit():
        audit.record(
            current_operator(),
            "configuration.test",
            "configuration",
            f"{code}/{configuration.name}",
            None,
            test,
        )
    if wants_fragment():
        return render_template("console/_connection-test.html", test=test)
    return _instance_page(found, test=test)


# -- scheduler tasks --------------------------------------------------------------


def _schedules():
    """Describe each task: its schedule in TIMEZONE and in UTC, its last runs."""
    rows = []
    for task in schedule.TASKS.values():
        try:
            utc = schedule.cron_of(task)
        except schedule.ScheduleError as exc:
            utc = str(exc)
        rows.append(
            {
                "task": task,
                "local": current_app.config[task.cron_setting],
                "utc": utc,
                "runs": TaskRun.latest(task.name),
            }
        )
    return rows


@bp.route("/tasks")
@operator_required()
def tasks():
    """List the scheduler's tasks, their schedules and last runs."""
    name, slot = request.args.get("task"), request.args.get("slot")
    progress_run = TaskRun.get_or_none(TaskRun.task == name, TaskRun.slot == slot)
    return render_template(
        "console/tasks.html",
        rows=_schedules(),
        action_form=ActionForm(),
        timezone=current_app.config["TIMEZONE"],
        slot=slot,
        task_name=name,
        progress_run=progress_run,
    )


def _task(name):
    if name not in schedule.TASKS:
        abort(404, _("No such task."))
    return schedule.TASKS[name]


@bp.route("/tasks/<name>/run", methods=["POST"])
@operator_required(admin=True)
def task_run(name):
    """Run a task now in the background; answer its progress (audited)."""
    from . import jobs
    from .extensions import get_queue

    task = _task(name)
    if not ActionForm().validate_on_submit():
        abort(400, _("The form has expired. Reload the page and try again."))
    slot = f"manual:{uuid.uuid4().hex[:12]}"
    with write_unit():
        audit.record(
            current_operator(), "task.run", "task", task.name, None, {"slot": slot}
        )
    get_queue().enqueue(jobs.run_task_now, task.name, slot, job_timeout=3600)
    if wants_fragment():
        return _progress(task, slot)
    return redirect(url_for("console.tasks", task=task.name, slot=slot))


@bp.route("/tasks/<name>/runs/<slot>")
@operator_required()
def task_progress(name, slot):
    """Answer a manual run's progress fragment; it polls itself until done."""
    return _progress(_task(name), slot)


def _progress(task, slot):
    run = TaskRun.get_or_none(TaskRun.task == task.name, TaskRun.slot == slot)
    return render_template("console/_task-run.html", task=task, slot=slot, run=run)


# -- reconciliation ---------------------------------------------------------------


@bp.route("/reconcile", methods=["GET", "POST"])
@operator_required(admin=True)
def reconcile_page():
    """Compare a period with Uniteller's records; POST fixes what is safe (audited)."""
    args = request.form if request.method == "POST" else request.args
    found = _chosen_instance(args)
    if found is None:
        if request.method == "POST":
            abort(400, _("Choose a module instance."))
        return _choose_instance("console.reconcile_page")
    code = found.code
    first, last = parse_date(args, "from"), parse_date(args, "to")
    context = {
        "instance": found,
        "report": None,
        "error": None,
        "action_form": ActionForm(),
        "differences": DIFFERENCES,
        "first": first or local_today() - timedelta(days=1),
        "last": last or local_today(),
    }
    if request.method == "POST" and not ActionForm().validate_on_submit():
        abort(400, _("The form has expired. Reload the page and try again."))
    if first is None or last is None:
        if request.method == "POST":
            abort(400, _("Give the period: from and to."))
        return render_template("console/reconcile.html", **context)
    if last < first:
        abort(400, _("The period ends before it starts."))
    fix = request.method == "POST"
    try:
        report = reconcile(found, first, last, fix=fix, who=current_operator().login)
    except UnitellerError as exc:
        context["error"] = str(exc)
        return render_template("console/reconcile.html", **context), 502
    if fix:
        with write_unit():
            audit.record(
                current_operator(),
                "reconcile.fix",
                "instance",
                code,
                None,
                {
                    "from": first.isoformat(),
                    "to": last.isoformat(),
                    "differences": len(report.differences),
                    "fixed": [d.order_id for d in report.differences if d.fixed],
                },
            )
    context["report"] = report
    return render_template("console/reconcile.html", **context)


# -- orphan callbacks ---------------------------------------------------------------


@bp.route("/orphans")
@operator_required()
def orphans():
    """List the newest signed callbacks and answers about orders we do not have."""
    rows = list(TransactionEvent.orphans().limit(200))
    return render_template("console/orphans.html", rows=rows)


# -- the audit log ----------------------------------------------------------------


@bp.route("/audit")
@operator_required(admin=True)
def audit_log():
    """List the audit log, filtered by operator, action, object and period."""
    start, end = parse_period(request.args)
    filters = {
        k: request.args.get(k, "").strip()[:64]
        for k in ("operator", "action", "object_type", "from", "to")
    }
    page = _page_number()
    size = current_app.config["PAGE_SIZE"]
    rows = list(
        audit.entries(
            filters["operator"], filters["action"], filters["object_type"], start, end
        )
        .limit(size + 1)
        .offset((page - 1) * size)
    )
    actions = [
        a
        for (a,) in AuditEntry.select(AuditEntry.action)
        .distinct()
        .order_by(AuditEntry.action)
        .tuples()
    ]
    return page_or_fragment(
        "console/audit.html",
        "console/_audit-table.html",
        rows=rows[:size],
        has_next=len(rows) > size,
        page=page,
        filters=filters,
        actions=actions,
        operators=[o.login for o in Operator.select().order_by(Operator.login)],
    )


# -- a contract's autopay -----------------------------------------------------------


class AutopayChargeForm(FlaskForm):
    """A manual charge in automatic mode: how much and why."""

    amount = StringField(_l("Amount, ₽"), validators=[DataRequired(), Length(max=20)])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=300)])


@bp.route("/contracts/<number>/autopay/charge", methods=["POST"])
@operator_required()
def autopay_charge(number):
    """Charge a contract's card now, in automatic mode (audited)."""
    found = manage.get_contract(number)
    form = AutopayChargeForm()
    try:
        if not form.validate_on_submit():
            raise CabinetError(_("Give the amount and the reason."))
        amount = parse_amount(form.amount.data)
        with write_unit():
            charge = autopay.request_charge(
                found,
                amount,
                form.reason.data.strip(),
                source=f"console:{current_operator().login}",
            )
            audit.record(
                current_operator(),
                "autopay.charge",
                "contract",
                number,
                None,
                {
                    "charge": charge.id,
                    "amount": format_wire(amount),
                    "reason": charge.reason,
                },
            )
    except AmountError as exc:
        flash(AMOUNT_ERRORS[str(exc)], "error")
    except CabinetError as exc:
        flash(_autopay_refusal(exc), "error")
    else:
        flash(
            _(
                "Charge of %(amount)s ₽ asked for; its result appears below.",
                amount=format_human(amount),
            ),
            "ok",
        )
    return redirect(url_for("console.contract", number=number) + "#autopay-block")


def _autopay_refusal(exc):
    """Say in words why an autopay action was refused."""
    if exc.message == "not_automatic":
        return _("The contract's autopay is not on in automatic mode.")
    if exc.message == "amount_out_of_range":
        return out_of_range(exc)
    return exc.message


@bp.route("/contracts/<number>/autopay/off", methods=["POST"])
@operator_required()
def autopay_off(number):
    """Turn a contract's autopay off (audited)."""
    found = manage.get_contract(number)
    if not ActionForm().validate_on_submit():
        abort(400, _("The form has expired. Reload the page and try again."))
    current = autopay.autopay_of(found)
    if current is None:
        abort(404, "no autopay")
    with write_unit():
        autopay.turn_off(found, who=f"operator {current_operator().login}")
        audit.record(
            current_operator(),
            "autopay.off",
            "contract",
            number,
            {"state": current.state},
            {"state": "off"},
        )
    flash(_("Autopay is off."), "ok")
    return redirect(url_for("console.contract", number=number) + "#autopay-block")
