"""Contracts: the searchable list, one contract's page, its module instance."""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import accounts, audit, autopay, configurations, monitor, payments
from ..db import write_unit
from ..models import Contract, Transaction
from ..pages import page_number, page_of, page_or_fragment, parse_period
from ..wording import WEEKDAYS
from . import args
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import ActionForm, AutopayChargeForm, LinkForm


@bp.route("/")
@operator_required()
def index():
    """Start at the contracts."""
    return redirect(url_for("console.contracts"))


@bp.route("/contracts")
@operator_required()
def contracts():
    """List contracts, searched by number or name, paginated."""
    search = request.args.get("q", "").strip()[:100]
    query = monitor.contracts_matching(search) if search else Contract.select()
    page = page_number()
    size = current_app.config["PAGE_SIZE"]
    rows = list(
        query.order_by(Contract.number).limit(size + 1).offset((page - 1) * size)
    )
    return page_or_fragment(
        "console/contracts.html",
        "console/_contract-list.html",
        **page_of(rows, page, size),
        search=search,
    )


def _contract_context(contract, link_form=None):
    """Gather a contract page: its filtered Uniteller transactions, forms, autopay."""
    status = args.status_filter()
    start, end = parse_period(request.args)
    rows, following = monitor.page(
        Transaction.history(contract, status or None, start, end),
        current_app.config["PAGE_SIZE"],
        args.cursor(),
    )
    return {
        "contract": contract,
        "rows": rows,
        "following": following,
        "filters": {k: request.args.get(k, "") for k in ("status", "from", "to")},
        "statuses": args.STATUS_FILTERS,
        "link_form": link_form or LinkForm.of(contract),
        "ledger_balance": payments.ledger_balance(contract),
        "charge_form": AutopayChargeForm(),
        "action_form": ActionForm(),
        "weekdays": WEEKDAYS,
        **autopay.summary(contract, charges=10),
    }


@bp.route("/contracts/<number>")
@operator_required()
def contract(number):
    """Show a contract: balance, module instance, its Uniteller transactions."""
    found = accounts.get_contract(number)
    return page_or_fragment(
        "console/contract.html",
        "console/_contract-transactions.html",
        **_contract_context(found),
    )


def _link(contract, code):
    """Link a contract to the instance with this code (None: unlink), audited."""
    instance = configurations.get_instance(code) if code else None
    with write_unit():
        before = contract.instance.code if contract.instance_id else None
        accounts.link_contract(contract, instance)
        audit.record(
            current_operator(),
            "contract.link",
            "contract",
            contract.number,
            {"instance": before},
            {"instance": code},
        )


@bp.route("/contracts/<number>/instance", methods=["POST"])
@operator_required(admin=True)
def link_instance(number):
    """Link a contract to a module instance, or unlink it (audited)."""
    found = accounts.get_contract(number)
    form = LinkForm.of(found, request.form)
    if not form.validate():
        return render_template(
            "console/contract.html", **_contract_context(found, form)
        ), 400
    _link(found, form.instance.data or None)
    flash(_("Module instance saved."), "ok")
    return redirect(url_for("console.contract", number=number))
