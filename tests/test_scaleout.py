"""Scale-out: two gunicorn servers and two RQ workers as processes on one database.

The processes share PostgreSQL (a schema of this run) and Redis (this run's
database number), with the Uniteller sandbox in a thread as the gateway.
Payments, duplicated callbacks to both servers and concurrent autopay runs go
through them; every order must be credited once and every due autopay charged
once. Skipped when PostgreSQL is unreachable, unless CI=true.
"""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from cabinet import accounts, configurations, create_app
from cabinet.models import (
    AutopayCharge,
    Contract,
    LedgerEntry,
    TaskRun,
    Transaction,
)
from tests.helpers import (
    CsrfSession,
    bind_autopay,
    free_port,
    in_app,
    isp_today,
    pay_by_card,
    redis_url,
    signed_callback,
)

ROOT = Path(__file__).resolve().parent.parent
PG_URL = (
    os.environ.get("TEST_DATABASE_URL")
    or os.environ.get("PG_TEST_URL", "postgresql://postgres@127.0.0.1:5432/test")
).split("?")[0]
SHOP = {"shop_id": "00000077", "login": "7007", "password": "scaleout-shop-password"}
PAYERS = ["2001", "2002", "2003", "2004"]
AUTOPAYERS = ["3001", "3002"]


def wait_until(predicate, timeout, what):
    """Poll until predicate() is true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def postgres_schema():
    """A schema of this run in the PostgreSQL test database; its URL."""
    import psycopg2

    try:
        connection = psycopg2.connect(PG_URL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is unreachable at {PG_URL} under CI: {exc}")
        pytest.skip(
            f"PostgreSQL is unreachable at {PG_URL}: the scale-out test "
            "needs it (see README, Scale-out)"
        )
    connection.autocommit = True
    schema = f"scaleout_{os.getpid()}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        cursor.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    connection.close()


class Processes:
    """Child processes with their output in files; all stopped at the end."""

    def __init__(self, directory, env):
        self.directory, self.env, self.running = directory, env, {}

    def start(self, name, *args):
        log = open(self.directory / f"{name}.log", "wb")
        self.running[name] = (
            subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            ),
            log,
        )

    def check_alive(self):
        for name, (process, _) in self.running.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited:\n{self.tail(name)}")

    def tail(self, name):
        return (self.directory / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self):
        for process, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, log in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


class Site:
    """What the test helpers need to act as a subscriber against one web server."""

    def __init__(self, url, sandbox_app, sandbox_url, contract_number):
        self.url, self.sandbox_url = url, sandbox_url
        self.sandbox_app, self.contract_number = sandbox_app, contract_number

    def settle(self, timeout=20):
        assert self.sandbox_app.extensions["sandbox"].wait_idle(timeout)


def gunicorn(processes, name, port):
    processes.start(
        name,
        "-m",
        "gunicorn",
        "-c",
        "deploy/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
    )


@pytest.mark.scaleout
def test_two_web_servers_and_two_workers_credit_and_charge_once(
    postgres_schema, redis, tmp_path, monkeypatch
):
    from rq import Queue
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    from cabinet import jobs
    from cabinet.extensions import QUEUE_NAME
    from cabinet.uniteller.sandbox import add_shop
    from cabinet.uniteller.sandbox import create_app as create_sandbox
    from cabinet.uniteller.sandbox.testing import serve_in_thread

    ports = free_port(), free_port()
    web = [f"http://127.0.0.1:{port}" for port in ports]
    # The helpers act as browsers do: real servers check CSRF tokens.
    monkeypatch.setattr(CsrfSession, "cabinet_urls", tuple(web))
    monkeypatch.setattr(requests, "Session", CsrfSession)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
    env.update(
        {
            "DATABASE_URL": postgres_schema,
            "REDIS_URL": redis_url(redis),
            "SECRET_KEY": "scaleout-secret-key",
            "INSTANCE_DIR": str(tmp_path),
            # One public address, as behind a load balancer; either server answers.
            "PUBLIC_URL": web[0],
            "STATUS_CHECK_GRACE": "0",
            "RETURN_CHECK_DELAY": "0",
            "RESULTS_MIN_INTERVAL": "0.05",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    processes = Processes(tmp_path, env)
    upgrade = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "cabinet", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgrade.returncode == 0, upgrade.stderr

    sandbox_app = create_sandbox(
        {
            "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
            "SANDBOX_TIME_SCALE": 0.001,
            "SANDBOX_RESULTS_INTERVAL": 0.05,
            "SANDBOX_CAPTURE_DELAY": 0,
            "SANDBOX_STATUS_CHECK_DELAY": 0,
        }
    )
    sandbox = serve_in_thread(sandbox_app)
    add_shop(
        sandbox_app,
        SHOP["shop_id"],
        password=SHOP["password"],
        login=SHOP["login"],
        notify_url=f"{web[0]}/uniteller/isp/notify",
        status_url=f"{web[1]}/uniteller/isp/status",
        callback_fields="BillNumber ApprovalCode Total",
    )
    app = create_app(
        {
            "DATABASE_URL": postgres_schema,
            "REDIS_URL": redis_url(redis),
            "SECRET_KEY": "scaleout-secret-key",
            "TESTING": True,
            "UNITELLER_EXTRA_GATEWAYS": sandbox.url,
        }
    )
    with in_app(app):
        instance = configurations.add_instance("isp", "ISP")
        configurations.add_configuration(
            instance,
            "main",
            [
                f"shop_id={SHOP['shop_id']}",
                f"login={SHOP['login']}",
                f"password={SHOP['password']}",
                f"gateway_url={sandbox.url}",
                "autopay_weekly=yes",
                "autopay_monthly=yes",
                "autopay_automatic=yes",
            ],
            activate=True,
        )
        for number in PAYERS + AUTOPAYERS:
            accounts.add_contract(
                number, f"Subscriber {number}", "demo-pass", None, instance
            )

    try:
        gunicorn(processes, "web-a", ports[0])
        gunicorn(processes, "web-b", ports[1])
        processes.start("worker-1", "worker.py")
        processes.start("worker-2", "worker.py")

        def answers(url):
            processes.check_alive()
            try:
                return requests.get(f"{url}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        for url in web:
            wait_until(lambda url=url: answers(url), 30, f"gunicorn at {url}")

        # Payments, each subscriber through one server or the other.
        def pay(index_number):
            index, number = index_number
            site = Site(web[index % 2], sandbox_app, sandbox.url, number)
            order_id, _, returned = pay_by_card(site)
            assert returned.status_code == 200
            return order_id

        with ThreadPoolExecutor(len(PAYERS)) as pool:
            orders = list(pool.map(pay, enumerate(PAYERS)))
        assert sandbox_app.extensions["sandbox"].wait_idle(20)

        # Uniteller's retries, duplicated to both servers at once.
        def callback(target_order):
            target, order_id = target_order
            fields = signed_callback(order_id, "paid", SHOP["password"], "500.00")
            return requests.post(
                f"{target}/uniteller/isp/notify", data=fields, timeout=10
            ).status_code

        duplicates = [(url, order) for order in orders for url in web * 3]
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(callback, duplicates)) == {200}

        # Two autopays due today, then four runs at once on the two workers:
        # two cron ticks (two schedulers) and two runs by hand.
        weekday = isp_today(app).weekday()
        for index, number in enumerate(AUTOPAYERS):
            bind_autopay(
                Site(web[index % 2], sandbox_app, sandbox.url, number),
                "weekly",
                amount="300",
                weekday=weekday,
            )
        queue = Queue(QUEUE_NAME, connection=redis)
        queue.enqueue(jobs.run_scheduled_task, "autopay")
        queue.enqueue(jobs.run_scheduled_task, "autopay")
        queue.enqueue(jobs.run_task_now, "autopay", "manual:scaleout-1")
        queue.enqueue(jobs.run_task_now, "autopay", "manual:scaleout-2")

        def charged():
            processes.check_alive()
            with in_app(app):
                done = (
                    AutopayCharge.select()
                    .where(AutopayCharge.status == "succeeded")
                    .count()
                )
            return (
                done >= len(AUTOPAYERS)
                and queue.count == 0
                and StartedJobRegistry(queue=queue).count == 0
            )

        wait_until(charged, 30, "the autopay charges")
        assert sandbox_app.extensions["sandbox"].wait_idle(20)
        time.sleep(0.5)  # a last duplicate in flight, if any, lands now

        with in_app(app):
            for number in PAYERS:
                contract = Contract.by_number(number)
                payments_ = list(contract.transactions)
                assert [t.status for t in payments_] in (["paid"], ["authorized"])
                assert contract.balance == 50000, number
            for number in AUTOPAYERS:
                contract = Contract.by_number(number)
                charges = list(
                    AutopayCharge.select()
                    .join_from(AutopayCharge, Transaction)
                    .where(Transaction.contract == contract)
                )
                assert [c.status for c in charges] == ["succeeded"], number
                kinds = sorted(
                    t.kind
                    for t in contract.transactions
                    if t.status in ("paid", "authorized")
                )
                assert kinds == ["bind", "recurrent"], number
                assert contract.balance == 60000, number
            for transaction in Transaction.select():
                credits = (
                    LedgerEntry.select()
                    .where(
                        LedgerEntry.transaction == transaction,
                        LedgerEntry.kind == "credit",
                    )
                    .count()
                )
                assert credits == (1 if transaction.is_credited else 0)
            cron_runs = (
                TaskRun.select()
                .where(TaskRun.task == "autopay", TaskRun.trigger == "cron")
                .count()
            )
            assert cron_runs == 1  # two cron ticks enqueued, one run
        assert FailedJobRegistry(queue=queue).count == 0

        metrics = requests.get(f"{web[1]}/metrics", timeout=5).text
        counter = 'cabinet_callbacks_total{result="accepted"}'
        accepted = next(
            line for line in metrics.splitlines() if line.startswith(counter)
        )
        assert int(accepted.split()[-1]) >= len(duplicates)
    except BaseException:
        for name in processes.running:
            print(f"--- {name}\n{processes.tail(name)}")
        raise
    finally:
        processes.stop()
        sandbox.shutdown()
        sandbox_app.extensions["sandbox"].close()


def test_the_gunicorn_config_serves_and_logs_no_query_string(tmp_path, redis):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'cabinet.sqlite3'}",
            "REDIS_URL": redis_url(redis),
            "SECRET_KEY": "k",
            "INSTANCE_DIR": str(tmp_path),
            "LOG_FORMAT": "json",
        }
    )
    processes = Processes(tmp_path, env)
    processes.start(
        "web",
        "-m",
        "gunicorn",
        "-c",
        "deploy/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
    )
    try:

        def up():
            processes.check_alive()
            try:
                return (
                    requests.get(
                        f"http://127.0.0.1:{port}/healthz?token=s3cret", timeout=1
                    ).status_code
                    == 200
                )
            except requests.RequestException:
                return False

        wait_until(up, 30, "gunicorn")
    finally:
        processes.stop()
    log = processes.tail("web")
    assert '"GET /healthz HTTP/1.1\\" 200' in log or "GET /healthz HTTP/1.1" in log
    assert "s3cret" not in log
    assert '"logger": "gunicorn.access"' in log
