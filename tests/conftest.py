"""Fixtures: the app on a real SQLite file (or PostgreSQL), a real Redis, data."""

import os

import pytest
import redis as redis_lib

from cabinet import create_app
from cabinet.db import db
from cabinet.models import MODELS

# A Redis database number of our own; it must be empty when a test starts.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
SHOP = {"shop_id": "00000001", "login": "1001", "password": "shop-secret-password"}


@pytest.fixture
def redis():
    """A real Redis on a dedicated database number, flushed before and after."""
    connection = redis_lib.Redis.from_url(TEST_REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def database_url(tmp_path):
    """The database under test: TEST_DATABASE_URL, else a fresh SQLite file."""
    return TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'cabinet.sqlite3'}"


@pytest.fixture
def make_app(database_url, redis, tmp_path):
    """Build an app on the test database; keyword settings override."""
    schema_ready = []

    def make(**overrides):
        settings = {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key",
            "DATABASE_URL": database_url,
            "REDIS_URL": TEST_REDIS_URL,
            "PUBLIC_URL": "http://cabinet.test",
            "WTF_CSRF_ENABLED": False,
        }
        settings.update(overrides)
        app = create_app(settings)
        if schema_ready:
            return app
        schema_ready.append(True)
        with app.app_context():
            db.connect(reuse_if_open=True)
            # A clean schema for every test, on SQLite and on PostgreSQL alike.
            db.drop_tables(MODELS, safe=True, cascade=db.obj.__class__.__name__
                           .startswith("Postgres"))
            db.create_tables(MODELS)
            db.close()
        return app
    return make


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
    with app.app_context():
        db.connect(reuse_if_open=True)
        yield app
        if not db.is_closed():
            db.close()


@pytest.fixture
def shop():
    """The shop credentials the test configuration uses."""
    return dict(SHOP)


@pytest.fixture
def demo(ctx, shop):
    """An instance with an active configuration and a linked contract 1001."""
    from cabinet import manage

    instance = manage.add_instance("isp", "Test ISP")
    manage.add_configuration(instance, "main", [
        f"shop_id={shop['shop_id']}", f"login={shop['login']}",
        f"password={shop['password']}", "gateway_url=http://gateway.test",
        "min_amount=10.00", "max_amount=15000.00",
    ], activate=True)
    contract = manage.add_contract("1001", "Иванов И. И.", "demo-pass",
                                   "ivanov@example.com", instance)
    other = manage.add_contract("1002", "Петров П. П.", "other-pass", None, instance)
    return {"instance": instance, "contract": contract, "other": other}


def login(client, number="1001", password="demo-pass"):
    """Log a subscriber in through the form."""
    return client.post("/login", data={"number": number, "password": password})


@pytest.fixture
def live_server(app):
    """Serve the app over HTTP in a thread (threaded, like a real server)."""
    from cabinet.uniteller.sandbox.testing import serve_in_thread

    server = serve_in_thread(app)
    yield server
    server.shutdown()
