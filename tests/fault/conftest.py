"""The fault and abuse suite: its scale, its figures report, the secrets watch."""

import logging
import os
from dataclasses import dataclass
from urllib.parse import unquote_plus

import pytest
import requests
from flask.testing import FlaskClient

from tests.fault.tools import FAULT_SCALE, SCENARIOS, SECRET_KEY, SHOP, WATCH

# --- the figures report ------------------------------------------------------------


@dataclass
class Figure:
    scenario: int
    name: str
    value: object
    expected: object

    @property
    def ok(self):
        return self.expected is None or self.value == self.expected


@pytest.fixture
def figure(request):
    """Record a scenario's figure for the report: figure(1, "duplicates", n, 0).

    Kept in the test's report (user_properties), which an xdist worker sends to
    the process that prints the summary.
    """

    def record(scenario, name, value, expected=None):
        request.node.user_properties.append(
            ("fault figure", (scenario, name, value, expected))
        )
        return value

    return record


def pytest_collection_modifyitems(items):
    """Run the secrets scan (scenario 19) after every other test of the suite."""
    last = [item for item in items if item.get_closest_marker("after_the_suite")]
    for item in last:
        items.remove(item)
        items.append(item)


def _figures(terminalreporter):
    """The figures the run's fault tests recorded, from their reports."""
    return [
        Figure(*recorded)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for key, recorded in getattr(report, "user_properties", ())
        if key == "fault figure"
    ]


def report_figures(terminalreporter):
    """Print each scenario's figures: what the run measured against what is expected.

    Called by tests/conftest.py's pytest_terminal_summary: an xdist controller
    loads no conftest below tests/.
    """
    figures = _figures(terminalreporter)
    if not figures:
        return
    write = terminalreporter.write_line
    database = "PostgreSQL" if os.environ.get("TEST_DATABASE_URL") else "SQLite"
    terminalreporter.section(
        f"fault suite report (FAULT_SCALE={FAULT_SCALE:g}, {database}, "
        f"app served by werkzeug threaded)"
    )
    write(f"{'#':>2}  {'scenario':<50} {'figure':<46} {'value':>12}  expected")
    for f in sorted(figures, key=lambda f: f.scenario):
        expected = "" if f.expected is None else f.expected
        mark = "" if f.ok else "  <-- NOT AS EXPECTED"
        write(
            f"{f.scenario:>2}  {SCENARIOS[f.scenario]:<50} {f.name:<46} "
            f"{f.value!s:>12}  {expected!s}{mark}"
        )


class _WatchHandler(logging.Handler):
    """Scan log records, and keep the current test's for its own checks."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is not a secret
            text = str(record.msg)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)
        WATCH.log(record.name, text)


@pytest.fixture(autouse=True)
def watch_for_secrets(monkeypatch):
    """Pass every response and log record of a fault test through the watch."""
    send, open_ = requests.Session.send, FlaskClient.open

    def watched_send(self, request, **kwargs):
        response = send(self, request, **kwargs)
        if not response.headers.get("Content-Type", "").startswith("application/octet"):
            body = request.body or ""
            sent = request.url + (
                body if isinstance(body, str) else body.decode("utf-8", "replace")
            )
            WATCH.page(response.url, response.text, unquote_plus(sent))
        return response

    def watched_open(self, *args, **kwargs):
        response = open_(self, *args, **kwargs)
        # What the test sent: the path and query, and the form or JSON it gave.
        sent = unquote_plus(response.request.full_path) + repr(args) + repr(kwargs)
        WATCH.page(response.request.path, response.get_data(as_text=True), sent)
        return response

    monkeypatch.setattr(requests.Session, "send", watched_send)
    monkeypatch.setattr(FlaskClient, "open", watched_open)
    handler = _WatchHandler()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def log_lines(watch_for_secrets):
    """The log messages of the running test (and their tracebacks)."""
    return watch_for_secrets.lines


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture
def shop():
    """The suite's shop, with secrets the watch looks for."""
    return dict(SHOP)


@pytest.fixture
def make_app(make_app):
    """The app factory with the suite's distinctive session secret."""

    def make(**overrides):
        return make_app(**{"SECRET_KEY": SECRET_KEY, **overrides})

    return make


@pytest.fixture
def make_world(make_world):
    """The live pair; the sandbox's own pages (its test-card list) are not ours."""

    def make(*args, **kwargs):
        world = make_world(*args, **kwargs)
        WATCH.foreign.add(world.sandbox_url)
        return world

    return make
