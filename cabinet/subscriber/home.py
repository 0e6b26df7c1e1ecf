"""The cabinet's first page: the balance, the last payments, the pay button."""

from flask import render_template

from ..auth import current_contract
from ..balances import balance_of
from ..models import Transaction
from .blueprint import availability, bp, contract_required


@bp.route("/")
@contract_required
def index():
    """Show the balance, the last payments and the pay button."""
    contract = current_contract()
    configuration, unavailable = availability(contract)
    recent = list(Transaction.history(contract).limit(5))
    return render_template(
        "subscriber/index.html",
        contract=contract,
        balance=balance_of(contract),
        recent=recent,
        unavailable=unavailable,
    )
