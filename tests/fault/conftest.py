"""The fault and abuse suite: its scale, its figures report, the secrets watch."""

import logging
import os
import re
import threading
from dataclasses import dataclass
from urllib.parse import unquote_plus

import pytest
import requests
from flask.testing import FlaskClient

from cabinet.db import db

# The one setting of the suite: 1 runs the counts and durations of issue 8;
# CI (Makefile) runs a small fraction of them.
FAULT_SCALE = float(os.environ.get("FAULT_SCALE", "1"))

SCENARIOS = {
    1: "one callback x50 concurrently, many orders",
    2: "replays: paid again later, paid after canceled",
    3: "bad signatures, password not configured",
    4: "valid signature, unknown order",
    5: "Total differs from the order",
    6: "paid before authorized, Paid/paid, canceled/cancelled",
    7: "callback and status task racing",
    8: "all callbacks dropped",
    9: "worker SIGKILLed around a recurrent charge",
    10: "Redis flushed mid-run",
    11: "gateway timeouts, 5xx, codes 15/28",
    12: "SQLite under callbacks plus page reads",
    13: "random kopeck amounts credited and reversed",
    14: "fuzzed forms, callbacks and API",
    15: "foreign order ids, console without staff",
    16: "state-changing forms without CSRF",
    17: "open redirects",
    18: "brute force, fixation, re-authentication",
    19: "secrets in logs and pages",
    20: "security headers and cookies",
}

# Secrets of the suite's shop and app, distinctive so a leak cannot hide among
# ordinary numbers; scenario 19 looks for them everywhere.
SHOP = {
    "shop_id": "00000001",
    "login": "77310042",
    "password": "fault-suite-uniteller-password-7Qx",
}
SECRET_KEY = "fault-suite-session-secret-Hk29"
TEST_CARDS = (
    "4000000000002487",
    "4000000000002420",
    "4000000000002438",
    "5000000000002443",
    "5000000000002450",
    "2200060300746821",
    "4000000000002479",
    "4000000000002488",
    "4405050300000001",
)
SECRETS = {
    "Uniteller password": SHOP["password"],
    "API login": SHOP["login"],
    "session secret": SECRET_KEY,
    **{f"card {card[:4]}…{card[-4:]}": card for card in TEST_CARDS},
}


def scaled(full, minimum=1):
    """Scale a full-run count by FAULT_SCALE, never below `minimum`."""
    return max(minimum, round(full * FAULT_SCALE))


def scaled_seconds(full, minimum):
    """Scale a full-run duration by FAULT_SCALE, never below `minimum` seconds."""
    return max(minimum, full * FAULT_SCALE)


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


FIGURES: list[Figure] = []


@pytest.fixture
def figure():
    """Record a scenario's figure for the report: figure(1, "duplicates", n, 0)."""

    def record(scenario, name, value, expected=None):
        FIGURES.append(Figure(scenario, name, value, expected))
        return value

    return record


def pytest_collection_modifyitems(items):
    """Run the secrets scan (scenario 19) after every other test of the suite."""
    last = [item for item in items if item.get_closest_marker("after_the_suite")]
    for item in last:
        items.remove(item)
        items.append(item)


def pytest_terminal_summary(terminalreporter):
    """Print each scenario's figures: what the run measured against what is expected."""
    if not FIGURES:
        return
    write = terminalreporter.write_line
    database = "PostgreSQL" if os.environ.get("TEST_DATABASE_URL") else "SQLite"
    terminalreporter.section(
        f"fault suite report (FAULT_SCALE={FAULT_SCALE:g}, {database}, "
        f"app served by werkzeug threaded)"
    )
    write(f"{'#':>2}  {'scenario':<50} {'figure':<46} {'value':>12}  expected")
    for f in sorted(FIGURES, key=lambda f: f.scenario):
        expected = "" if f.expected is None else f.expected
        mark = "" if f.ok else "  <-- NOT AS EXPECTED"
        write(
            f"{f.scenario:>2}  {SCENARIOS[f.scenario]:<50} {f.name:<46} "
            f"{f.value!s:>12}  {expected!s}{mark}"
        )


# --- the secrets watch (scenario 19) -------------------------------------------------


class SecretsWatch:
    """Scan every page the suite fetches and every log line for secrets."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pages = 0
        self.log_lines = 0
        self.hits = []
        self.foreign = set()  # the sandbox's base URLs: it plays Uniteller, not us
        self.pattern = re.compile("|".join(re.escape(s) for s in SECRETS.values()))
        self.names = {value: name for name, value in SECRETS.items()}

    def scan(self, where, text, sent=""):
        """Note every secret in `text`, with where it was seen.

        A secret the request itself carried (a fuzzer's input echoed in a
        login link) is the sender's own text, not a leak.
        """
        for match in self.pattern.finditer(text):
            if match.group() in sent:
                continue
            start = max(0, match.start() - 60)
            with self.lock:
                self.hits.append(
                    (self.names[match.group()], where, text[start : match.end() + 20])
                )

    def page(self, url, text, sent=""):
        """Scan one answer; `sent` is what its request carried."""
        if any(url.startswith(base) for base in self.foreign):
            return
        with self.lock:
            self.pages += 1
        self.scan(f"page {url}", text, sent)

    def log(self, source, text):
        with self.lock:
            self.log_lines += text.count("\n") + 1
        self.scan(f"log {source}", text)


WATCH = SecretsWatch()


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


class InApp:
    """Enter an app context with an open connection (a reusable context manager)."""

    def __init__(self, app):
        self.app = app

    def __enter__(self):
        self.ctx = self.app.app_context()
        self.ctx.push()
        db.connect(reuse_if_open=True)
        return self.app

    def __exit__(self, *exc):
        if not db.is_closed():
            db.close()
        self.ctx.pop()
