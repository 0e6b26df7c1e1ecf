"""Billing connectors of an instance, the needs-attention list and its actions."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import billing, configurations
from ..errors import CabinetError
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import (
    ActionForm,
    ConnectorForm,
    DeliveryDoneForm,
    ReaddressForm,
    fresh_form_required,
)


def _values(form, kind):
    """Take the form's values of a kind's keys (empty ones take their defaults)."""
    return {
        key: (getattr(form, key).data or "").strip()
        for key in billing.KINDS[kind]
        if getattr(form, key).data
    }


def _connectors_page(instance, form=None, status=200):
    """Render an instance's connectors with their figures, and the add form."""
    return render_template(
        "console/billing.html",
        instance=instance,
        connectors=billing.connector_figures(instance),
        shown=billing.shown_params,
        form=form or ConnectorForm(),
    ), status


@bp.route("/instances/<code>/billing", methods=["GET", "POST"])
@operator_required(admin=True)
def billing_connectors(code):
    """List an instance's billing connectors; POST adds or edits one (audited)."""
    instance = configurations.get_instance(code)
    form = ConnectorForm()
    if request.method == "GET":
        return _connectors_page(instance)
    if not form.validate_on_submit():
        return _connectors_page(instance, form, 400)
    name = form.name.data.strip()
    existing = next(
        (c for c in billing.connectors_of(instance) if c.name == name), None
    )
    try:
        if existing is None:
            billing.add_connector(
                instance,
                name,
                form.kind.data,
                _values(form, form.kind.data),
                who=current_operator(),
            )
        else:
            billing.update_connector(
                existing,
                _values(form, existing.kind),
                who=current_operator(),
                is_active=form.is_active.data,
            )
    except CabinetError as exc:
        form.url.errors.append(exc.message)
        return _connectors_page(instance, form, 400)
    flash(_("Connector %(name)s saved.", name=name), "ok")
    return redirect(url_for("console.billing_connectors", code=code))


def _attention_page(status=200, error=None):
    """Render the needs-attention list, with the reason an action was refused."""
    return render_template(
        "console/billing-attention.html",
        rows=list(billing.attention()),
        error=error,
        action_form=ActionForm(),
        done_form=DeliveryDoneForm(),
        readdress_form=ReaddressForm(),
    ), status


@bp.route("/billing/attention")
@operator_required()
def billing_attention():
    """List the deliveries the billing refused or that need a person."""
    return _attention_page()


def _act(action, delivery_id, *args):
    """Run an operator's action on a delivery (audited); 409 with why if refused."""
    try:
        action(delivery_id, *args, who=current_operator())
    except CabinetError as exc:
        return _attention_page(exc.status_code, exc.message)
    flash(_("Delivery %(id)s updated.", id=delivery_id), "ok")
    return redirect(url_for("console.billing_attention"))


@bp.route("/billing/deliveries/<int:delivery_id>/retry", methods=["POST"])
@operator_required()
@fresh_form_required
def billing_retry(delivery_id):
    """Send a delivery again now (audited)."""
    return _act(billing.retry, delivery_id)


@bp.route("/billing/deliveries/<int:delivery_id>/done", methods=["POST"])
@operator_required()
def billing_done(delivery_id):
    """Mark a delivery done by hand, with a comment (audited)."""
    form = DeliveryDoneForm()
    if not form.validate_on_submit():
        return _attention_page(400, _("Say what was done in the billing."))
    return _act(billing.mark_done, delivery_id, form.comment.data)


@bp.route("/billing/deliveries/<int:delivery_id>/readdress", methods=["POST"])
@operator_required()
def billing_readdress(delivery_id):
    """Send a delivery again to a corrected account (audited)."""
    form = ReaddressForm()
    if not form.validate_on_submit():
        return _attention_page(400, _("Give the account to deliver to."))
    return _act(billing.readdress, delivery_id, form.account.data)
