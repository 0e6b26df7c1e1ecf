"""gunicorn settings: `gunicorn -c deploy/gunicorn.conf.py` from the checkout.

Every value can be changed by an environment variable (GUNICORN_BIND, …) or on
the command line, which wins over this file.
"""

import multiprocessing
import os

wsgi_app = "cabinet:create_app()"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
# The usual 2 x CPUs + 1 processes, each with a few threads: requests mostly
# wait on the database.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# No request of ours calls Uniteller while the subscriber waits longer than
# this; a worker stuck past it is killed and replaced.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle processes now and then, jittered so they do not restart together.
max_requests = 5000
max_requests_jitter = 500

# The service's home is the read-only checkout, and nothing uses gunicorn's
# control socket (gunicornc).
control_socket_disable = True

# gunicorn believes no X-Forwarded-* header itself (its default trusts them from
# 127.0.0.1): the app's TRUSTED_PROXIES alone decides which proxies it believes,
# so TRUSTED_PROXIES=0 means no forwarded header changes the scheme or address.
forwarded_allow_ips = ""

accesslog = "-"
errorlog = "-"
# Path without the query string and no referrer: either could carry an order's
# signature or a token. Proxied address, method, path, status, bytes, ms, agent.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'

# gunicorn's own lines in the cabinet's format (LOG_FORMAT=json: JSON lines).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "cabinet": {
            "()": "cabinet.logs.formatter",
            "log_format": os.environ.get("LOG_FORMAT", "text"),
        },
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "cabinet",
            "stream": "ext://sys.stderr",
        },
    },
    # The app gives the root logger its handler (cabinet/logs.py).
    "root": {"level": os.environ.get("LOG_LEVEL", "INFO"), "handlers": []},
    "loggers": {
        "gunicorn.error": {
            "level": os.environ.get("LOG_LEVEL", "INFO"),
            "handlers": ["stderr"],
            "propagate": False,
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["stderr"],
            "propagate": False,
        },
    },
}
