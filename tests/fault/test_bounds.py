"""Scenarios 109-111: bounded periods and dates, and request bodies of bounded size."""

import pytest

from cabinet import accounts, configurations
from tests.fault.tools import snapshot
from tests.helpers import ADMIN, console_login, in_app, login

pytestmark = pytest.mark.fault

EXTREME_DATES = ["0001-01-01", "9999-12-31", "1999-12-31", "2101-01-01"]
EXTREME_PAGES = [
    "page=99999999999999999999",
    "after=0001-01-01T00:00:00_1",
    "after=9999-12-31T23:59:59_99999999999999999999",
]


@pytest.fixture
def shop_app(make_app, shop):
    """An instance with its configuration, contract 1001 and an admin.

    No app context stays open: each request has its own (and its own user).
    """

    def build(**settings):
        app = make_app(**settings)
        with in_app(app):
            instance = configurations.add_instance("isp", "Test ISP")
            configurations.add_configuration(
                instance,
                "main",
                [
                    f"shop_id={shop['shop_id']}",
                    f"login={shop['login']}",
                    f"password={shop['password']}",
                    "gateway_url=http://gateway.test",
                ],
                activate=True,
            )
            accounts.add_contract("1001", "Иванов", "demo-pass", None, instance)
            accounts.add_operator(*ADMIN, admin=True)
        return app

    return build


def test_110_extreme_dates_and_pages_are_refused_with_a_reason(shop_app, figure):
    app = shop_app()
    subscriber, admin = app.test_client(), app.test_client()
    login(subscriber)
    console_login(admin, ADMIN)
    pages = [
        (subscriber, "/payments?"),
        (admin, "/console/monitor?instance=isp&"),
        (admin, "/console/monitor/summary?instance=isp&"),
        (admin, "/console/monitor.csv?instance=isp&"),
        (admin, "/console/audit?"),
        (admin, "/console/contracts/1001?"),
        (admin, "/console/reconcile?instance=isp&"),
    ]
    tried, failed = 0, []
    for client, page in pages:
        queries = [f"{edge}={day}" for day in EXTREME_DATES for edge in ("from", "to")]
        for query in queries + EXTREME_PAGES:
            answer = client.get(page + query)
            tried += 1
            text = answer.get_data(as_text=True)
            if answer.status_code >= 500:
                failed.append((page + query, answer.status_code))
            elif "=" in query and query.split("=")[0] in ("from", "to"):
                if answer.status_code != 400 or "a date from 2000-01-01" not in text:
                    failed.append((page + query, answer.status_code))
    figure(110, "extreme dates and pages tried", tried)
    figure(110, "answered other than 400 with a reason", len(failed), 0)
    assert failed == []


def test_110_the_reconcile_command_refuses_extreme_dates(shop_app):
    app = shop_app()
    with in_app(app):
        before = snapshot()
    result = app.test_cli_runner().invoke(
        args=["reconcile", "isp", "--from", "0001-01-01", "--to", "0001-01-02"]
    )
    assert result.exit_code == 2 and "a date from 2000-01-01" in result.output
    with in_app(app):
        assert snapshot() == before
