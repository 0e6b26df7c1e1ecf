"""Module instances: the list, creating one, one instance's configurations."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import audit, configurations
from .. import params as module_params
from ..db import write_unit
from ..errors import CabinetError, Conflict
from ..models import ModuleConfiguration
from . import args
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import ActionForm, InstanceForm
from .wording import CONNECTION_WORDS


def _create(form):
    """Create the form's instance (audited); None if refused, the reason on the form."""
    try:
        with write_unit():
            made = configurations.add_instance(
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
    except Conflict:
        form.code.errors.append(_("An instance with this code exists already."))
    except CabinetError:
        form.code.errors.append(_("Lower-case letters, digits, '-' and '_'."))
    else:
        return made
    return None


@bp.route("/instances", methods=["GET", "POST"])
@operator_required(admin=True)
def instances():
    """List the module instances; POST creates one (audited)."""
    form = InstanceForm()
    made = _create(form) if form.validate_on_submit() else None
    if made is not None:
        flash(_("Module instance %(code)s created.", code=made.code), "ok")
        return redirect(url_for("console.instance", code=made.code))
    return render_template(
        "console/instances.html", instances=args.instances(), form=form
    ), (400 if form.errors else 200)


def instance_page(instance, status=200, test=None):
    """Render an instance's configurations, with a connection test's result if any."""
    saved = list(instance.configurations.order_by(ModuleConfiguration.name))
    return render_template(
        "console/instance.html",
        instance=instance,
        configurations=saved,
        redacted=module_params.redacted,
        action_form=ActionForm(),
        test=test,
        failures=CONNECTION_WORDS,
        previous=configurations.previous_configuration(instance),
        missing_for_payments=module_params.missing_for_payments,
    ), status


@bp.route("/instances/<code>/configs")
@operator_required(admin=True)
def instance(code):
    """Show an instance's configurations: which is active, who made and activated it."""
    return instance_page(configurations.get_instance(code))


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
