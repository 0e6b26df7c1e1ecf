"""Contracts from the billing by CSV upload (admins): the same report as the CLI."""

from flask import current_app, render_template
from flask_babel import gettext as _

from .. import audit, contract_import
from ..db import write_unit
from ..errors import CabinetError
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import ContractImportForm


def _import(form):
    """Run the import of the uploaded file; audit it unless nothing was written."""
    upload = form.file.data
    report = contract_import.run(
        upload.read(),
        dry_run=form.dry_run.data,
        partial=form.partial.data,
        rows_max=current_app.config["CONTRACT_IMPORT_MAX_ROWS"],
    )
    if report.written:
        with write_unit():
            audit.record(
                current_operator(),
                "contract.import",
                "contract",
                upload.filename or "upload",
                None,
                {**report.counts(), "partial": report.partial},
            )
    return report


@bp.route("/contract-import", methods=["GET", "POST"])
@operator_required(admin=True)
def contract_import_page():
    """Upload a contracts CSV (with dry run and partial) and show the report."""
    form, report, error = ContractImportForm(), None, ""
    if form.validate_on_submit():
        try:
            report = _import(form)
        except CabinetError as exc:
            error = exc.message
    elif form.is_submitted():
        error = _("Choose a CSV file.")
    status = 400 if error or (report and report.refused and not report.written) else 200
    return render_template(
        "console/contract-import.html", form=form, report=report, error=error
    ), status
