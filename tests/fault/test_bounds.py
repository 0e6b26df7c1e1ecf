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
                if answer.status_code != 400 or "2000-01-01" not in text:
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


def test_109_reconciliation_is_a_bounded_job_started_by_post(
    make_world, run_jobs, monkeypatch, figure
):
    from datetime import timedelta

    from cabinet import acquirer
    from cabinet.models import ReconcileRun
    from tests.helpers import isp_today

    world = make_world()
    with in_app(world.app):
        accounts.add_operator(*ADMIN, admin=True)
    asked = []
    ask = acquirer.ask_results
    monkeypatch.setattr(
        acquirer, "ask_results", lambda *a, **k: asked.append(k) or ask(*a, **k)
    )
    admin = world.app.test_client()
    console_login(admin, ADMIN)
    last = isp_today(world.app)
    month = {"instance": "isp", "from": str(last - timedelta(days=30)), "to": str(last)}
    longer = {**month, "from": str(last - timedelta(days=31))}
    years = {**month, "from": "2000-01-01"}

    shown = admin.get("/console/reconcile", query_string=month)
    refused = [admin.post("/console/reconcile", data=p) for p in (longer, years)]
    command = ["reconcile", "isp", "--from", longer["from"], "--to", longer["to"]]
    cli = world.app.test_cli_runner().invoke(args=command)
    started = admin.post("/console/reconcile", data=month)
    asked_before_the_job = len(asked)
    figure(109, "/results/ requests made by a GET or a refused period", len(asked), 0)
    assert shown.status_code == 200 and asked_before_the_job == 0
    assert [r.status_code for r in refused] == [400, 400]
    assert "не длиннее 31 дн." in refused[0].get_data(as_text=True)
    assert cli.exit_code == 2 and "at most 31 days" in cli.output
    assert started.status_code == 302

    run_jobs(world.app)
    with in_app(world.app):
        (run,) = ReconcileRun.select()
    figure(109, "requests of a 31-day run (7-day windows)", len(asked), 5)
    assert run.status == "done" and run.report["requests"] == len(asked) == 5
    page = admin.get(started.headers["Location"]).get_data(as_text=True)
    assert 'id="reconcile-report"' in page


class Unreadable:
    """A 100 MB request body that counts every attempt to read it."""

    size = 100 * 1024 * 1024
    reads = 0

    def __init__(self):
        self.position = 0

    def tell(self):
        return self.position

    def seek(self, offset, whence=0):
        # The test client measures the body by seeking to its end.
        self.position = self.size if whence == 2 else offset

    def read(self, *args):
        Unreadable.reads += 1
        raise AssertionError("the body was read")

    readline = readlines = read


def test_111_a_body_over_the_limit_is_refused_unread(shop_app, figure):
    app = shop_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024  # the default
    client = app.test_client()
    refused = []
    for path, kind in (
        ("/login", "application/x-www-form-urlencoded"),
        ("/uniteller/isp/notify", "application/x-www-form-urlencoded"),
        ("/api/autopay/charge", "application/json"),
        ("/console/login", "multipart/form-data; boundary=x"),
    ):
        answer = client.post(path, input_stream=Unreadable(), content_type=kind)
        refused.append(answer.status_code)
    figure(111, "100 MB bodies answered 413", refused.count(413), len(refused))
    figure(111, "reads of a refused body", Unreadable.reads, 0)
    assert refused == [413] * 4 and Unreadable.reads == 0
    # Just under the limit is an ordinary (here: wrong) login, not a 413.
    small = client.post("/login", data={"number": "1001", "password": "x" * 150})
    assert small.status_code == 401
