"""Fixtures: the app on a real SQLite file (or PostgreSQL), a real Redis, data."""

import atexit
import functools
import hashlib
import importlib
import os
import pkgutil
import sys
import threading
import weakref

import pytest
import redis as redis_lib
import requests
from peewee import PostgresqlDatabase

from cabinet import create_app
from cabinet.db import db
from cabinet.models import MODELS
from tests.helpers import (
    ADMIN,
    ALL_MODES,
    BILLING_PASSWORD,
    OPERATOR,
    PASSWORD_HASHES,
    TEST_SECRET_KEY,
    add_shop_instance,
    fiscal_profile,
    in_app,
)


def _claim_redis_db():
    """Pick a Redis database number no other test run on this machine is using."""
    if os.environ.get("TEST_REDIS_URL"):
        return os.environ["TEST_REDIS_URL"]
    # Runs side by side (a developer's and CI's) would flush each other's
    # queues: each claims a number in database 15, held while its pid lives.
    control = redis_lib.Redis(host="127.0.0.1", port=6379, db=15)
    for number in range(14, 4, -1):
        key = f"cabinet-tests:redis-db:{number}"
        holder = control.get(key)
        if holder and _alive(int(holder)):
            continue
        if holder:
            control.delete(key)  # its run died without letting go
        if control.set(key, os.getpid(), ex=6 * 3600, nx=True):
            atexit.register(control.delete, key)
            return f"redis://127.0.0.1:6379/{number}"
    raise RuntimeError("no free Redis database number for the tests (5-14)")


def _alive(pid):
    """True if a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _own_postgres_schema(url):
    """Give this run a schema of its own in the PostgreSQL test database."""
    if not url.startswith("postgres"):
        return url
    import psycopg2

    schema = f"run_{os.getpid()}"
    connection = psycopg2.connect(url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        cursor.execute(f"CREATE SCHEMA {schema}")

    def drop():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        connection.close()

    atexit.register(drop)
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


# The gateway of configurations no test talks to: allowed by every test app.
TEST_GATEWAY = "http://gateway.test"
SHOP = {"shop_id": "00000001", "login": "1001", "password": "shop-secret-password"}


@pytest.fixture(scope="session", autouse=True)
def precomputed_password_hashes():
    """Seed passwords without paying werkzeug's scrypt for each contract or login.

    The app still hashes and checks with werkzeug's own functions; only their
    cost is paid once per session: generate_password_hash (as the app's modules
    imported it) answers a seeded password with its precomputed hash from
    helpers.PASSWORD_HASHES (any other password: one real hash, then cached),
    and hashlib.scrypt remembers what it computed, so checking a password
    against one of those hashes is a dictionary look-up after the first time.
    """
    from werkzeug import security

    real_generate = security.generate_password_hash
    real_scrypt = hashlib.scrypt
    generated = dict(PASSWORD_HASHES)
    lock = threading.Lock()

    def generate(password, method="scrypt", salt_length=16):
        if (method, salt_length) != ("scrypt", 16):
            return real_generate(password, method, salt_length)
        with lock:
            if password not in generated:
                generated[password] = real_generate(password)
            return generated[password]

    @functools.lru_cache(maxsize=4096)
    def scrypt(password, *, salt, n, r, p, maxmem=0, dklen=64):
        return real_scrypt(
            password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen
        )

    import cabinet

    # Import the whole package first: a module a test imports later would
    # keep the real function.
    for found in pkgutil.walk_packages(cabinet.__path__, "cabinet."):
        importlib.import_module(found.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashlib, "scrypt", scrypt)
        # Wherever the app keeps generate_password_hash (modules move around).
        patched = False
        for name, module in list(sys.modules.items()):
            if name.split(".")[0] == "cabinet" and (
                getattr(module, "generate_password_hash", None) is real_generate
            ):
                patch.setattr(module, "generate_password_hash", generate)
                patched = True
        if not patched:
            import warnings

            warnings.warn(
                "no cabinet module uses generate_password_hash: seeding pays scrypt",
                stacklevel=1,
            )
        yield


@pytest.fixture(scope="session")
def redis_server_url():
    """A Redis database number of this process's own (each xdist worker claims one).

    Claimed when the first test needs it, so the xdist controller, which runs
    no test, holds none. It must be empty when a test starts.
    """
    return _claim_redis_db()


@pytest.fixture(scope="session")
def postgres_url():
    """TEST_DATABASE_URL with a schema of this process's own, or "" (SQLite)."""
    return _own_postgres_schema(os.environ.get("TEST_DATABASE_URL", ""))


@pytest.fixture
def redis(redis_server_url):
    """A real Redis on a dedicated database number, flushed before and after."""
    connection = redis_lib.Redis.from_url(redis_server_url)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def database_url(postgres_url, tmp_path):
    """The database under test: TEST_DATABASE_URL, else a fresh SQLite file."""
    return postgres_url or f"sqlite:///{tmp_path / 'cabinet.sqlite3'}"


# Every database (connection pool) a test's app opened: each must have let go of
# its connections before the next test starts.
_DATABASES = weakref.WeakSet()


def _holding(database):
    """Count the connections a pool still holds, idle or in use."""
    # peewee's pool has no public count; these are its two lists.
    return len(database._connections) + len(database._in_use)


@pytest.fixture
def make_app(database_url, redis, redis_server_url, tmp_path):
    """Build an app on the test database; keyword settings override.

    The pools of the apps it built are closed when the test ends: left open, a
    run's tests pile up PostgreSQL connections (up to POOL_SIZE an app) until the
    server refuses new ones ("too many clients") and a later test's requests
    answer 500.
    """
    left = sum(_holding(database) for database in _DATABASES)
    assert left == 0, f"earlier tests left {left} database connections open"
    schema_ready = []
    built = []

    def make(**overrides):
        settings = {
            "TESTING": True,
            "SECRET_KEY": TEST_SECRET_KEY,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server_url,
            "PUBLIC_URL": "http://cabinet.test",
            "WTF_CSRF_ENABLED": False,
            # The tests' gateway names (the live sandbox adds its own address).
            "UNITELLER_EXTRA_GATEWAYS": TEST_GATEWAY,
        }
        settings.update(overrides)
        app = create_app(settings)
        built.append(app.extensions["database"])
        _DATABASES.add(app.extensions["database"])
        if schema_ready:
            return app
        schema_ready.append(True)
        with in_app(app):
            # A clean schema for every test, on SQLite and on PostgreSQL alike.
            db.drop_tables(
                MODELS, safe=True, cascade=isinstance(db.obj, PostgresqlDatabase)
            )
            db.create_tables(MODELS)
        return app

    yield make
    for database in built:
        database.close_all()


@pytest.fixture
def app(make_app):
    """The app with default test settings."""
    return make_app()


@pytest.fixture
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def ctx(app):
    """An app context with an open connection, for calling services directly."""
    with in_app(app):
        yield app


@pytest.fixture
def shop():
    """The shop credentials the test configuration uses."""
    return dict(SHOP)


@pytest.fixture
def demo(ctx, shop):
    """An instance with an active configuration and a linked contract 1001."""
    from cabinet import accounts
    from cabinet.models import Contract

    instance = add_shop_instance(
        shop,
        "http://gateway.test",
        email="ivanov@example.com",
        params=("min_amount=10.00", "max_amount=15000.00"),
    )
    contract = Contract.by_number("1001")
    other = accounts.add_contract("1002", "Петров П. П.", "other-pass", None, instance)
    return {"instance": instance, "contract": contract, "other": other}


@pytest.fixture
def staff(demo):
    """An admin and a plain operator, beside the demo contracts."""
    from cabinet import accounts

    accounts.add_operator(*ADMIN, admin=True)
    accounts.add_operator(*OPERATOR)
    return demo


@pytest.fixture
def live_server(app):
    """Serve the app over HTTP in a thread (threaded, like a real server)."""
    from cabinet.uniteller.sandbox.testing import serve_in_thread

    server = serve_in_thread(app)
    yield server
    server.shutdown()


class World:
    """Our app served live, talking to a live sandbox as its Uniteller."""

    def __init__(self, app, url, sandbox_app, sandbox_url, contract_number):
        self.app = app
        self.url = url
        self.sandbox_app = sandbox_app
        self.sandbox_url = sandbox_url
        self.contract_number = contract_number

    @property
    def sandbox(self):
        return self.sandbox_app.extensions["sandbox"]

    def faults(self, **faults):
        """Set the sandbox's fault knobs."""
        answer = requests.post(
            f"{self.sandbox_url}/_sandbox/faults", json=faults, timeout=5
        )
        assert answer.status_code == 200, answer.text

    def settle(self, timeout=20):
        """Wait until the sandbox has delivered everything it had to."""
        assert self.sandbox.wait_idle(timeout), "sandbox still busy"


@pytest.fixture
def make_world(make_app, tmp_path, shop):
    """Build the live app + live sandbox pair; sandbox settings as keywords."""
    from cabinet import accounts, configurations
    from cabinet.uniteller.sandbox import add_shop
    from cabinet.uniteller.sandbox import create_app as create_sandbox
    from cabinet.uniteller.sandbox.testing import serve_in_thread

    started = []

    def make(app_settings=None, config=(), fiscal=False, **sandbox_settings):
        sandbox_app = create_sandbox(
            {
                "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
                "SANDBOX_TIME_SCALE": 0.001,
                "SANDBOX_RESULTS_INTERVAL": 0.05,
                # Held up to 20 intervals before a 429, as the service holds 100 s
                # against its 5 s (scaled by SANDBOX_TIME_SCALE): a request a busy
                # machine sends a little early waits, as it would at Uniteller.
                "SANDBOX_RESULTS_HOLD_SECONDS": 1000,
                "SANDBOX_CAPTURE_DELAY": 0,
                "SANDBOX_STATUS_CHECK_DELAY": 0,
                **sandbox_settings,
            }
        )
        sandbox_server = serve_in_thread(sandbox_app)
        app = make_app(
            **{
                "RESULTS_MIN_INTERVAL": 0.05,
                "STATUS_CHECK_GRACE": 0,
                "RETURN_CHECK_DELAY": 0,
                "UNITELLER_EXTRA_GATEWAYS": f"{TEST_GATEWAY},{sandbox_server.url}",
                **(app_settings or {}),
            }
        )
        server = serve_in_thread(app)
        started.append((server, sandbox_server, sandbox_app))
        app.config["PUBLIC_URL"] = server.url
        add_shop(
            sandbox_app,
            shop["shop_id"],
            password=shop["password"],
            login=shop["login"],
            notify_url=f"{server.url}/uniteller/isp/notify",
            status_url=f"{server.url}/uniteller/isp/status",
            callback_fields="BillNumber ApprovalCode Total",
            fiscal=fiscal,
            fiscal_notify_url=f"{server.url}/uniteller/isp/fiscal" if fiscal else "",
        )
        if fiscal:  # the sandbox is the fiscal gateway too, and 1001 has a contact
            config = (*fiscal_profile(sandbox_server.url), *config)
        with in_app(app):
            instance = configurations.add_instance("isp", "Test ISP")
            configurations.add_configuration(
                instance,
                "main",
                [
                    f"shop_id={shop['shop_id']}",
                    f"login={shop['login']}",
                    f"password={shop['password']}",
                    f"gateway_url={sandbox_server.url}",
                    *config,
                ],
                activate=True,
            )
            email = "ivanov@example.com" if fiscal else None
            accounts.add_contract("1001", "Иванов И. И.", "demo-pass", email, instance)
        return World(app, server.url, sandbox_app, sandbox_server.url, "1001")

    yield make
    for server, sandbox_server, sandbox_app in started:
        server.shutdown()
        sandbox_server.shutdown()
        sandbox_app.extensions["sandbox"].close()


@pytest.fixture
def world(make_world):
    """Our app and the sandbox, both live, with default test settings."""
    return make_world()


@pytest.fixture
def run_jobs(redis):
    """Run every queued (and due delayed) RQ job in this process, then return."""
    from rq import Queue, SimpleWorker
    from rq.registry import ScheduledJobRegistry

    from cabinet.extensions import QUEUE_NAMES

    def run(app):
        from cabinet.queueing import flush_gathered

        flush_gathered()  # what the live app's requests gathered goes now
        queues = [Queue(name, connection=redis) for name in QUEUE_NAMES]
        for queue in queues:
            # Delayed jobs (enqueue_in) are due at once in tests: move them over.
            registry = ScheduledJobRegistry(queue=queue)
            for job_id in registry.get_job_ids():
                registry.remove(job_id)
                queue.enqueue_job(queue.fetch_job(job_id))
        # Jobs open and close their own connections: a bare app context here.
        with app.app_context():
            SimpleWorker(queues, connection=redis).work(burst=True)
        return queues[0]

    return run


# What stays out of the parallel pass: tests that measure load or concurrency,
# start processes on ports, or drive a browser, and the fault suite. The serial
# pass runs them on two workers at most, beside each other only, the fault suite
# as one group in one process (its secrets scan sees every page and log line of
# the suite, and runs after the rest of it).
SERIAL_MARKERS = ("fault", "scaleout", "browser")
SERIAL_PATHS = ("/tests/fault/", "/tests/e2e/", "/tests/test_scaleout.py")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items):
    """Mark tests that use no database of ours (the PostgreSQL pass skips them),
    and the ones the serial pass runs; group the fault suite."""
    for item in items:
        if "database_url" not in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.nodb)
        path = item.path.as_posix()
        if "/tests/fault/" in path:
            item.add_marker(pytest.mark.xdist_group("fault-suite"))
        if any(part in path for part in SERIAL_PATHS) or any(
            item.get_closest_marker(name) for name in SERIAL_MARKERS
        ):
            item.add_marker(pytest.mark.serial)
        if "/tests/e2e/" in path:
            # What a browser sees does not depend on the database under the
            # services, which the PostgreSQL pass covers without a browser.
            item.add_marker(pytest.mark.sqlite_only)


def pytest_terminal_summary(terminalreporter):
    """The fault suite's figures report, from the reports of its tests."""
    from tests.fault.conftest import report_figures

    report_figures(terminalreporter)


@pytest.fixture
def autopay_world(make_world):
    """The live pair with every autopay mode allowed and a built-in policy."""
    return make_world(
        config=(
            *ALL_MODES,
            "auto_threshold=100.00",
            "auto_target=500.00",
            "autopay_retry_days=2",
        )
    )


@pytest.fixture
def emulated_billing():
    """An emulated ISP billing (OSMP and webhooks) served live on a port of its own."""
    from cabinet.uniteller.sandbox.billing import EmulatedBilling
    from tests.helpers import LiveBilling

    live = LiveBilling(EmulatedBilling("cabinet", BILLING_PASSWORD))
    yield live
    live.stop()


@pytest.fixture
def osmp_world(world, emulated_billing):
    """The live pair with an OSMP connector to the emulated billing."""
    from cabinet import billing
    from cabinet.models import ModuleInstance

    with in_app(world.app):
        billing.add_connector(
            ModuleInstance.by_code("isp"),
            "books",
            "osmp",
            {
                "url": f"{emulated_billing.url}/osmp",
                "login": "cabinet",
                "password": BILLING_PASSWORD,
                "cancel": "yes",
                "timeout": "2",
            },
        )
    world.billing = emulated_billing
    return world


@pytest.fixture
def fiscal_shop(make_app, shop):
    """Our app on a fiscal configuration whose Uniteller is a small live fake.

    Yields (app, fake); contract 1001 has an e-mail, 1002 no contact at all.
    """
    from cabinet import accounts, configurations
    from tests.helpers import FakeFiscalUniteller

    fake = FakeFiscalUniteller(shop["password"])
    app = make_app(
        RESULTS_MIN_INTERVAL=0.05,
        RESOLVE_DELAY=0,
        UNITELLER_EXTRA_GATEWAYS=f"{TEST_GATEWAY},{fake.url}",
    )
    with in_app(app):
        instance = configurations.add_instance("isp", "Test ISP")
        configurations.add_configuration(
            instance,
            "main",
            [
                f"shop_id={shop['shop_id']}",
                f"login={shop['login']}",
                f"password={shop['password']}",
                f"gateway_url={fake.url}",
                f"fiscal_gateway_url={fake.url}",
                "fiscal=yes",
                "fiscal_taxmode=1",
                "fiscal_vat=-1",
                "fiscal_place=https://cabinet.test",
            ],
            activate=True,
        )
        accounts.add_contract(
            "1001", "Иванов И. И.", "demo-pass", "ivanov@example.com", instance
        )
        accounts.add_contract("1002", "Петров П. П.", "other-pass", None, instance)
    yield app, fake
    fake.stop()
