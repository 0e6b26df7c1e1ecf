"""The cabinet's first page: the balance, the last payments, autopay, the pay button."""

from flask import render_template

from .. import autopay
from ..auth import current_contract
from ..balances import balance_of
from ..models import Notice, Transaction
from .blueprint import availability, bp, contract_required
from .words import autopay_rule, states_of, suspension_reason


@bp.route("/")
@contract_required
def index():
    """Show the balance, the last payments, autopay in one look and the pay button."""
    contract = current_contract()
    configuration, unavailable = availability(contract)
    recent = list(Transaction.history(contract).limit(5))
    summary = autopay.summary(contract, charges=0)
    current = summary["autopay"]
    on = current is not None and current.state != "off"
    return render_template(
        "subscriber/index.html",
        contract=contract,
        balance=balance_of(contract),
        recent=recent,
        states=states_of(recent),
        unavailable=unavailable,
        autopay=current if on else None,
        next_day=summary["next_day"],
        rule=autopay_rule(current, configuration) if on else None,
        suspended_reason=suspension_reason(current) if on else None,
        notices=list(contract.notices.order_by(Notice.id.desc()).limit(3)),
    )
