"""An instance's configurations: create, edit, copy, versions, activate, test."""

from datetime import UTC, timedelta
from functools import partial

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import acquirer, audit, configurations
from .. import params as module_params
from ..clock import utcnow
from ..db import write_unit
from ..errors import CabinetError, Conflict, NotFound
from ..models import ConfigurationVersion, ModuleConfiguration
from ..pages import wants_fragment
from ..task_stats import TaskStats
from ..uniteller.client import (
    GatewayRefused,
    GatewayUnavailable,
    RateLimited,
    UnexpectedAnswer,
    UnitellerError,
)
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import ActionForm, ConfigurationForm, fresh_form_required
from .instances import instance_page
from .wording import CONNECTION_WORDS


def _configuration(instance, config_id):
    """Return the instance's configuration with this id; 404 if there is none."""
    found = ModuleConfiguration.get_or_none(
        ModuleConfiguration.id == config_id, ModuleConfiguration.instance == instance
    )
    if found is None:
        abort(404, _("No such configuration."))
    return found


def _record(action, object_type, object_id, before, after):
    """Record a change to a configuration or an instance in the audit log."""
    audit.record(current_operator(), action, object_type, object_id, before, after)


def _save_configuration(form, instance, save, **shown):
    """Run a configuration form: save() in a write unit (returns the name saved),
    its refusals shown on the form (400), or back to the instance on success."""
    if form.validate_on_submit():
        try:
            with write_unit():
                name = save()
        except module_params.ParamError as exc:
            form.show_error(exc)
        except Conflict:
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


# -- create, edit, copy -----------------------------------------------------------


def _create(form, instance):
    """Create the configuration the form describes (audited); return its name."""
    lines = [f"{k}={v}" for k, v in form.params().items()]
    made = configurations.add_configuration(
        instance, form.name.data, lines, who=current_operator().login
    )
    target = f"{instance.code}/{made.name}"
    after = {"params": made.params}
    _record("configuration.create", "configuration", target, None, after)
    return made.name


@bp.route("/instances/<code>/configs/new", methods=["GET", "POST"])
@operator_required(admin=True)
def configuration_new(code):
    """Create a configuration of an instance (audited)."""
    found = configurations.get_instance(code)
    form = ConfigurationForm()
    save = partial(_create, form, found)
    return _save_configuration(form, found, save, configuration=None)


def _update(form, instance, configuration):
    """Save the form's parameters as the configuration's new version (audited)."""
    saved = configurations.update_configuration(
        configuration, form.params(), who=current_operator().login
    )
    changed = saved.params.get("password") != configuration.params.get("password")
    _record(
        "configuration.update",
        "configuration",
        f"{instance.code}/{configuration.name}",
        {"params": configuration.params},
        {"params": saved.params, "password_changed": changed},
    )
    return configuration.name


@bp.route("/instances/<code>/configs/<int:config_id>", methods=["GET", "POST"])
@operator_required(admin=True)
def configuration_edit(code, config_id):
    """Edit a configuration's parameters; an empty password keeps it (audited)."""
    found = configurations.get_instance(code)
    configuration = _configuration(found, config_id)
    form = ConfigurationForm.filled(configuration, name=configuration.name)
    form.name.data = configuration.name  # the name is the key: it does not change
    save = partial(_update, form, found, configuration)
    return _save_configuration(form, found, save, configuration=configuration)


def _copy(form, instance, source):
    """Make a configuration from source with the form's name and parameters."""
    made = configurations.copy_configuration(
        source, form.name.data, form.params(), who=current_operator().login
    )
    _record(
        "configuration.copy",
        "configuration",
        f"{instance.code}/{made.name}",
        {"from": source.name},
        {"params": made.params},
    )
    return made.name


@bp.route("/instances/<code>/configs/<int:config_id>/copy", methods=["GET", "POST"])
@operator_required(admin=True)
def configuration_copy(code, config_id):
    """Make a configuration from another; its password is copied unseen (audited)."""
    found = configurations.get_instance(code)
    source = _configuration(found, config_id)
    form = ConfigurationForm.filled(source)
    if request.method == "GET":
        form.name.data = ""
    save = partial(_copy, form, found, source)
    return _save_configuration(form, found, save, configuration=None, source=source)


# -- versions ---------------------------------------------------------------------


@bp.route("/instances/<code>/configs/<int:config_id>/versions")
@operator_required(admin=True)
def configuration_versions(code, config_id):
    """List a configuration's versions: who changed it, when and how."""
    found = configurations.get_instance(code)
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
    found = configurations.get_instance(code)
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


# -- which one is active ----------------------------------------------------------


def _active_name(instance):
    """Name the instance's active configuration, or None."""
    active = instance.active_configuration()
    return active.name if active else None


def _confirm_page(instance, target, action_url, rollback=False):
    """Show what making `target` active changes, and ask to confirm (or why not)."""
    active = instance.active_configuration()
    return render_template(
        "console/activate.html",
        instance=instance,
        target=target,
        active=active,
        rollback=rollback,
        action_url=action_url,
        action_form=ActionForm(),
        missing=module_params.missing_for_payments(target.params),
        changes=module_params.changes(active.params if active else {}, target.params),
        secrets=module_params.SECRET_PARAMS,
    )


@bp.route("/instances/<code>/configs/<int:config_id>/activate")
@operator_required(admin=True)
def configuration_activate_confirm(code, config_id):
    """Ask to confirm an activation, showing what it changes."""
    found = configurations.get_instance(code)
    target = _configuration(found, config_id)
    url = url_for("console.configuration_activate", code=code, config_id=config_id)
    return _confirm_page(found, target, url)


@bp.route("/instances/<code>/configs/rollback")
@operator_required(admin=True)
def configuration_rollback_confirm(code):
    """Ask to confirm a rollback, showing what it changes."""
    found = configurations.get_instance(code)
    previous = configurations.previous_configuration(found)
    if previous is None:
        abort(409, _("No configuration was active before this one."))
    url = url_for("console.configuration_rollback", code=code)
    return _confirm_page(found, previous, url, rollback=True)


def _refused_activation(code, exc):
    """Back to the instance with why a configuration cannot be made active."""
    missing = ", ".join(exc.details["missing"])
    flash(
        _(
            "Not made active: it cannot take payments (%(missing)s not set).",
            missing=missing,
        ),
        "error",
    )
    return redirect(url_for("console.instance", code=code))


@bp.route("/instances/<code>/configs/<int:config_id>/activate", methods=["POST"])
@operator_required(admin=True)
@fresh_form_required
def configuration_activate(code, config_id):
    """Make a configuration the active one of its instance (audited)."""
    found = configurations.get_instance(code)
    configuration = _configuration(found, config_id)
    try:
        _activate(found, configuration)
    except configurations.CannotTakePayments as exc:
        return _refused_activation(code, exc)
    flash(_("Configuration %(name)s is active.", name=configuration.name), "ok")
    return redirect(url_for("console.instance", code=code))


def _activate(found, configuration):
    """Activate and audit in one unit."""
    with write_unit():
        before = _active_name(found)
        configurations.activate_configuration(
            found, configuration.name, who=current_operator().login
        )
        after = {"active": configuration.name}
        _record(
            "configuration.activate", "instance", found.code, {"active": before}, after
        )


@bp.route("/instances/<code>/configs/rollback", methods=["POST"])
@operator_required(admin=True)
@fresh_form_required
def configuration_rollback(code):
    """Activate again the configuration that was active before (audited)."""
    found = configurations.get_instance(code)
    with write_unit():
        before = _active_name(found)
        try:
            restored = configurations.roll_back(found, who=current_operator().login)
        except NotFound:
            abort(409, _("No configuration was active before this one."))
        after = {"active": restored.name}
        _record("configuration.rollback", "instance", code, {"active": before}, after)
    name = restored.name
    flash(_("Rolled back: configuration %(name)s is active again.", name=name), "ok")
    return redirect(url_for("console.instance", code=code))


# -- connection test --------------------------------------------------------------


# What a failed connection test says: our fixed words, never the answer's own
# (whatever answered may put anything in it, secrets it was sent included).
CONNECTION_FAILURES = (
    (GatewayRefused, "refused"),
    (RateLimited, "rate_limited"),
    (UnexpectedAnswer, "not_uniteller"),
    (GatewayUnavailable, "unavailable"),
)


def _connection_test(configuration):
    """Ask /results/ for the last hour with the configuration's credentials."""
    end = utcnow().replace(tzinfo=UTC)
    test = {"configuration": configuration.name, "ok": True, "orders": 0, "error": ""}
    try:
        rows = acquirer.ask_results(
            acquirer.client_for(configuration),
            acquirer.results_spacing(configuration),
            TaskStats(),
            start=end - timedelta(hours=1),
            end=end,
        )
        test["orders"] = len(rows)
    except UnitellerError as exc:
        kind = next((k for cls, k in CONNECTION_FAILURES if isinstance(exc, cls)), "")
        test.update(ok=False, error=kind or "failed")
        if kind == "unavailable":
            # Our own words: the path and an HTTP code or an exception's name.
            test["detail"] = str(exc)
    return test


@bp.route("/instances/<code>/configs/<int:config_id>/test", methods=["POST"])
@operator_required(admin=True)
@fresh_form_required
def configuration_test(code, config_id):
    """Ask /results/ for the last hour with a configuration's credentials (audited)."""
    found = configurations.get_instance(code)
    configuration = _configuration(found, config_id)
    test = _connection_test(configuration)
    with write_unit():
        target = f"{code}/{configuration.name}"
        _record("configuration.test", "configuration", target, None, test)
    if wants_fragment():
        return render_template(
            "console/_connection-test.html", test=test, failures=CONNECTION_WORDS
        )
    return instance_page(found, test=test)
