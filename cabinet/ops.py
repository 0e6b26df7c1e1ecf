"""Operations endpoints: liveness, readiness and Prometheus metrics."""

import hmac
import ipaddress
import logging
import time
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request
from peewee import fn

from .db import db
from .extensions import QUEUE_NAMES, get_redis

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)

CALLBACKS_KEY = "cabinet:metrics:callbacks"  # a hash: result -> count


@bp.route("/healthz")
def healthz():
    """Answer that the process is up (nothing else is checked)."""
    return "ok\n", 200, {"Content-Type": "text/plain"}


def _check_database():
    with db.connection_context():
        db.execute_sql("SELECT 1")


def _check_redis():
    get_redis().ping()


def _check_cron():
    from rq.cron_scheduler_registry import get_registry_key

    newest = get_redis().zrevrange(get_registry_key(), 0, 0, withscores=True)
    if not newest:
        raise LookupError("no cron scheduler has registered")
    age = time.time() - newest[0][1]
    if age > current_app.config["CRON_HEARTBEAT_MAX_AGE"]:
        raise LookupError(f"last heartbeat {int(age)} s ago")


@bp.route("/readyz")
def readyz():
    """Check the database, Redis and the cron heartbeat; a 503 names what fails."""
    checks = {}
    for name, check in (
        ("database", _check_database),
        ("redis", _check_redis),
        ("cron", _check_cron),
    ):
        if name == "cron" and checks["redis"] != "ok":
            checks[name] = "unknown: Redis is down"
            continue
        try:
            check()
            checks[name] = "ok"
        except LookupError as exc:
            checks[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            # The class only: a driver's message may carry a host or user name.
            checks[name] = f"unreachable ({type(exc).__name__})"
    failing = [name for name, state in checks.items() if state != "ok"]
    body = {
        "status": "failing" if failing else "ok",
        "failing": failing,
        "checks": checks,
    }
    return jsonify(body), 503 if failing else 200


def _allowed():
    """True for the metrics token or an address in METRICS_ALLOW."""
    token = current_app.config["METRICS_TOKEN"]
    sent = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(net.strip(), strict=False)
        for net in current_app.config["METRICS_ALLOW"].split(",")
        if net.strip()
    )


@bp.after_app_request
def count_callbacks(response):
    """Count Uniteller callbacks by outcome (Redis: shared by every web process)."""
    if request.endpoint == "gateway.notify":
        result = "accepted" if response.status_code == 200 else "rejected"
        try:
            get_redis().hincrby(CALLBACKS_KEY, result, 1)
        except Exception as exc:  # noqa: BLE001 - a metric never fails a callback
            log.warning("callback not counted: %s", type(exc).__name__)
    return response


def _labels(**labels):
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


class _Exposition:
    """Prometheus text format, metric by metric."""

    def __init__(self):
        self.lines = []

    def metric(self, name, kind, text, samples):
        self.lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        self.lines += [
            f"{name}{_labels(**labels) if labels else ''} {value}"
            for labels, value in samples
        ]

    def text(self):
        return "\n".join(self.lines) + "\n"


def _database_metrics(out):
    from .models import TaskRun, Transaction
    from .tasks import TASKS

    rows = (
        Transaction.select(
            Transaction.kind, Transaction.status, fn.COUNT(Transaction.id).alias("n")
        )
        .group_by(Transaction.kind, Transaction.status)
        .tuples()
    )
    out.metric(
        "cabinet_transactions",
        "gauge",
        "Transactions by kind and status.",
        [({"kind": k, "status": s}, n) for k, s, n in rows],
    )
    runs = dict(
        TaskRun.select(TaskRun.task, fn.COUNT(TaskRun.id))
        .group_by(TaskRun.task)
        .tuples()
    )
    failures = dict(
        TaskRun.select(TaskRun.task, fn.COUNT(TaskRun.id))
        .where(TaskRun.errors > 0)
        .group_by(TaskRun.task)
        .tuples()
    )
    last_ok = dict(
        TaskRun.select(TaskRun.task, fn.MAX(TaskRun.finished_at))
        .where(TaskRun.finished_at.is_null(False), TaskRun.errors == 0)
        .group_by(TaskRun.task)
        .tuples()
    )
    out.metric(
        "cabinet_task_runs_total",
        "counter",
        "Runs of each scheduled task.",
        [({"task": t}, runs.get(t, 0)) for t in TASKS],
    )
    out.metric(
        "cabinet_task_failures_total",
        "counter",
        "Runs of each scheduled task that had errors or crashed.",
        [({"task": t}, failures.get(t, 0)) for t in TASKS],
    )
    out.metric(
        "cabinet_task_last_success_timestamp_seconds",
        "gauge",
        "When each task last finished without errors (Unix time; 0: never).",
        [({"task": t}, _unix(last_ok.get(t))) for t in TASKS],
    )
    _billing_metrics(out)


def _billing_metrics(out):
    from . import billing

    counts, oldest_age = billing.delivery_counts()
    out.metric(
        "cabinet_billing_deliveries",
        "gauge",
        "Deliveries to the billing by connector (instance/name) and state.",
        [({"connector": c, "state": s}, n) for c, s, n in counts],
    )
    out.metric(
        "cabinet_billing_oldest_pending_seconds",
        "gauge",
        "Age of the oldest delivery not yet delivered (0: none).",
        [({}, oldest_age)],
    )


def _unix(value):
    """A naive UTC datetime (or SQLite's text of one) as Unix seconds; 0 for None."""
    if value is None:
        return 0
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return int(value.replace(tzinfo=UTC).timestamp())


def _redis_metrics(out):
    from rq import Queue
    from rq.registry import (
        DeferredJobRegistry,
        FailedJobRegistry,
        ScheduledJobRegistry,
        StartedJobRegistry,
    )

    redis = get_redis()
    counted = {k.decode(): int(v) for k, v in redis.hgetall(CALLBACKS_KEY).items()}
    out.metric(
        "cabinet_callbacks_total",
        "counter",
        "Uniteller callbacks answered, accepted (200) or rejected (403, 404).",
        [({"result": r}, counted.get(r, 0)) for r in ("accepted", "rejected")],
    )
    samples = []
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=redis)
        states = {
            "queued": queue.count,
            "started": StartedJobRegistry(queue=queue).count,
            "scheduled": ScheduledJobRegistry(queue=queue).count,
            "deferred": DeferredJobRegistry(queue=queue).count,
            "failed": FailedJobRegistry(queue=queue).count,
        }
        samples.extend(({"queue": name, "state": s}, n) for s, n in states.items())
    out.metric(
        "cabinet_queue_jobs", "gauge", "RQ jobs of each queue by state.", samples
    )


@bp.route("/metrics")
def metrics():
    """Expose counts and timestamps in Prometheus' text format (token or address)."""
    if not _allowed():
        return "forbidden\n", 403, {"Content-Type": "text/plain"}
    out = _Exposition()
    up = []
    for part, collect in (("database", _database_metrics), ("redis", _redis_metrics)):
        try:
            if part == "database":
                with db.connection_context():
                    collect(out)
            else:
                collect(out)
            up.append(({"part": part}, 1))
        except Exception as exc:  # noqa: BLE001 - report the rest, say what is down
            log.warning("metrics: %s unavailable: %s", part, type(exc).__name__)
            up.append(({"part": part}, 0))
    out.metric("cabinet_up", "gauge", "Whether each part could be read.", up)
    return out.text(), 200, {"Content-Type": "text/plain; version=0.0.4"}
