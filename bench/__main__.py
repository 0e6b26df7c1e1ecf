"""Run every benchmark on each database, print the table, write bench/results.json."""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

import psycopg2
import redis as redis_lib
import requests
from peewee import fn

from cabinet import clock, create_app
from cabinet.db import db
from cabinet.migrations import create_tables

from . import (
    AUTOPAYS,
    BILLING,
    BILLING_CONCURRENCY,
    BILLING_LATENCY_MS,
    CHARGE_SECONDS,
    CONTRACTS,
    DATABASES,
    DELIVERY_SECONDS,
    DURATION,
    HISTORY,
    IMPORT_PASSWORDS,
    IMPORT_ROWS,
    JOBS,
    ONLY,
    OPEN,
    PG_SCHEMA,
    PG_URL,
    QUICK,
    REDIS_URL,
    REQUESTS,
    SECRET_KEY,
    SEED,
    SHOP,
    TRANSACTIONS,
    bare,
    servers,
)
from .seed import HISTORY_CONTRACT, OPERATOR, PASSWORD, SURNAMES, Seeder, sandbox_orders

HERE = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get("BENCH_RESULTS") or HERE / "results.json").resolve()
EXPLAIN = RESULTS.with_name("explain.txt")
CONNECTIONS = 16  # twice gunicorn's 2 workers x 4 threads: always a request waiting
# Callbacks/s the bare driver is seeded for (step 1): above any rate seen, so
# its runs end by time, not by running out of orders.
BARE_RATE = 6000
CHARGE_WORKERS = 8  # RQ workers: more than the 5 slots, so a slot never waits
# The sandbox latencies the autopay charges are measured at (steps 5 and 11).
CHARGE_LATENCIES_MS = (100, 20)
# RQ workers of the delivery step: twice the connector's slots, so a slot never
# waits for a worker.
DELIVERY_WORKERS = int(
    os.environ.get("BENCH_DELIVERY_WORKERS") or 2 * BILLING_CONCURRENCY
)


def row(name, database, value, target, met, baseline=None, unit="", note=""):
    """One line of the table."""
    ratio = None if baseline in (None, 0) else round(value / baseline, 3)
    return {
        "name": name,
        "database": database,
        "value": round(value, 3),
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": ratio,
        "target": target,
        "met": bool(met),
        "unit": unit,
        "note": note,
    }


class Bench:
    """One database's run: the data, the servers, and the benchmarks over them."""

    def __init__(self, database, workdir):
        self.database = database
        self.workdir = Path(workdir)
        self.processes = []
        self.results = []
        self.notes = []

    # -- set-up ------------------------------------------------------------------

    def database_url(self):
        if self.database == "sqlite":
            return f"sqlite:///{self.workdir / 'cabinet.sqlite3'}"
        connection = psycopg2.connect(PG_URL)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
            cursor.execute(f"CREATE SCHEMA {PG_SCHEMA}")
        connection.close()
        separator = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{separator}options=-csearch_path%3D{PG_SCHEMA}"

    def setup(self):
        """Create and seed the database, start the sandbox and gunicorn."""
        redis_lib.Redis.from_url(REDIS_URL).flushdb()
        self.url = self.database_url()
        sandbox_port, self.port = servers.free_port(), servers.free_port()
        self.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            SECRET_KEY=SECRET_KEY,
            DATABASE_URL=self.url,
            REDIS_URL=REDIS_URL,
            PUBLIC_URL=self.base,
            INSTANCE_DIR=str(self.workdir),
            LOG_LEVEL="WARNING",
            PYTHONPATH=str(servers.ROOT),
        )
        sandbox_db = self.workdir / "sandbox.sqlite3"
        self.processes.append(
            servers.sandbox(sandbox_port, sandbox_db, self.env, self.workdir)
        )
        requests.post(
            f"{self.sandbox_url}/_sandbox/shops",
            timeout=10,
            json={
                **SHOP,
                "notify_url": f"{self.base}/uniteller/isp/notify",
                "callback_fields": "BillNumber ApprovalCode Total",
            },
        ).raise_for_status()
        self.app = create_app(
            {
                "DATABASE_URL": self.url,
                "REDIS_URL": REDIS_URL,
                "SECRET_KEY": SECRET_KEY,
                "PUBLIC_URL": self.base,
                "RESULTS_MIN_INTERVAL": 0.2,
                "LOG_LEVEL": "WARNING",
                "UNITELLER_EXTRA_GATEWAYS": self.sandbox_url,
            }
        )
        with self.app.app_context():
            create_tables()
            db.connect(reuse_if_open=True)
            self.seed(sandbox_db)
            db.close()
        process, how = servers.gunicorn(self.port, self.env, self.workdir)
        self.processes.append(process)
        self.gunicorn = process
        self.notes.append(f"app served by {how}")

    def seed(self, sandbox_db):

        started = time.perf_counter()
        seeder = Seeder(SEED, self.database != "sqlite")
        seeder.base(self.sandbox_url, CONTRACTS, TRANSACTIONS, HISTORY)
        # Two sets (full load, half load), each more than the fastest run can
        # post: every callback credits a new order, none is a replay.
        bodies = seeder.callbacks(8000 * DURATION)
        # Step 1's bare-driver runs (one connection, then wrk's 16): orders
        # enough for each, credited by nothing else.
        bare_orders = seeder.callback_orders(2 * BARE_RATE * DURATION, prefix="BD")
        self.bare_orders = bare_orders[::2], bare_orders[1::2]
        self.callback_bodies = []
        for name, part in (("full", bodies[::2]), ("half", bodies[1::2])):
            path = self.workdir / f"callbacks-{name}.txt"
            path.write_text("\n".join(part) + "\n")
            self.callback_bodies.append(str(path))
        parents = seeder.autopays(AUTOPAYS, clock.local_today())
        sandbox_orders(sandbox_db, parents, "payment", 1, 1000)
        self.open_orders = seeder.open_orders(OPEN)
        sandbox_orders(sandbox_db, self.open_orders, "payment", 0, 70000)
        if self.database != "sqlite":
            # What autovacuum does after a bulk load: statistics for the planner
            # and the visibility map that lets it read an index alone.
            db.execute_sql("VACUUM ANALYZE")
        self.seeder = seeder  # the outbox step seeds its own callback orders
        self.seconds_seeding = time.perf_counter() - started
        rates = ", ".join(
            f"{what} {count:,} at {rate:,.0f}/s"
            for what, (count, rate) in seeder.rates.items()
        )
        self.notes.append(f"seeded in {self.seconds_seeding:.0f} s: {rates}")
        self.instance_id = seeder.instance.id

    def teardown(self):
        if os.environ.get("BENCH_KEEP"):
            print(f"  kept {self.workdir} and the servers' logs in it")
        for process in reversed(self.processes):
            process.stop()
        redis_lib.Redis.from_url(REDIS_URL).flushdb()
        if self.database != "sqlite":
            connection = psycopg2.connect(PG_URL)
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
            connection.close()

    def add(self, *args, **kwargs):
        self.results.append(row(args[0], self.database, *args[1:], **kwargs))

    # -- sessions ----------------------------------------------------------------

    def login(self, path, fields, port=None):
        """Log in through the form (with its CSRF token); return the session cookie."""
        base = f"http://127.0.0.1:{port}" if port else self.base
        session = requests.Session()
        page = session.get(f"{base}{path}", timeout=10).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        answer = session.post(
            f"{base}{path}",
            timeout=30,
            allow_redirects=False,
            data={"csrf_token": token, **fields},
        )
        assert answer.status_code == 302, answer.status_code
        return session

    @staticmethod
    def cookie_header(session):
        return "Cookie: " + "; ".join(f"{k}={v}" for k, v in session.cookies.items())

    def wrk(self, path, connections=CONNECTIONS, base=None, **variables):
        url = f"{base or self.base}{path}"
        return servers.wrk(url, DURATION, connections, **variables)

    def paced(self, path, rate, **variables):
        """Run wrk at about `rate` requests/s: 8 connections, each pausing between."""
        connections = 8
        delay = max(1, int(connections * 1000 / max(rate, 1)))
        return self.wrk(path, connections=connections, delay_ms=delay, **variables)

    # -- 1, 2, 7: the web paths under wrk ----------------------------------------

    def bench_web(self):
        self.baselines = []
        first = len(self.results)
        # Warm up: gunicorn's workers answer their first requests slowly (a third
        # of the rate, seen here), which would flatter whatever follows.
        servers.wrk(f"{self.base}/healthz", 3, CONNECTIONS)
        self.bench_callbacks()
        self.bench_history()
        rates = sorted(self.baselines)
        self.results.insert(
            first,
            row(
                "baseline: /healthz (median)",
                self.database,
                rates[len(rates) // 2],
                "-",
                True,
                unit="req/s",
                note="measured just before each path it is the baseline of: "
                + ", ".join(f"{rate:,.0f}" for rate in self.baselines),
            ),
        )
        self.bench_web_memory()

    def baseline(self):
        """Measure /healthz now: each path's ratio is against the run just before it.

        The machine's speed drifts by tens of percent over a minute; a baseline
        taken next to the path it divides drifts with it.
        """
        rate = servers.wrk(f"{self.base}/healthz", max(2, DURATION // 2), CONNECTIONS)[
            "rate"
        ]
        self.baselines.append(rate)
        return rate

    def bench_callbacks(self):
        from cabinet.models import LedgerEntry, Transaction

        path = "/uniteller/isp/notify"
        full_bodies, half_bodies = self.callback_bodies
        healthz = self.baseline()
        bare_rates = {
            connections: bare.rate(
                self.url, "isp", orders, connections=connections, seconds=DURATION
            )
            for connections, orders in zip(
                (1, CONNECTIONS), self.bare_orders, strict=True
            )
        }
        # The storage's limit: the faster of one connection (SQLite has one
        # writer at a time) and as many as wrk has (PostgreSQL commits them
        # side by side).
        limit = max(rate for rate, _ in bare_rates.values())
        full = self.wrk(path, bodies=full_bodies, expect="credited")
        self.add(
            "1 callback: distinct paid callbacks",
            full["rate"],
            ">= 0.6",
            full["rate"] >= 0.6 * limit,
            baseline=limit,
            unit="req/s",
            note="baseline: the same statements by the bare driver, one "
            "transaction per callback: "
            + ", ".join(
                f"{connections} connection{'s' if connections > 1 else ''} "
                f"{rate:,.0f}/s ({count:,} callbacks)"
                for connections, (rate, count) in bare_rates.items()
            ),
        )
        self.add(
            "1 callback: against /healthz",
            full["rate"],
            "measured",
            True,
            baseline=healthz,
            unit="req/s",
        )
        # The second run posts bodies of its own (wrk's threads do not keep
        # step, so "where the first run stopped" is not one place).
        half = self.paced(path, full["rate"] / 2, bodies=half_bodies, expect="credited")
        p99 = half["p99_us"] / 1000
        # wrk stops with requests in flight: let gunicorn answer them before
        # counting (one committed between the two counts looked like a
        # duplicate credit).
        time.sleep(1)
        self.add(
            "1 callback: p99 at half load",
            p99,
            "< 50 ms",
            p99 < 50,
            unit="ms",
            note=f"at {half['rate']:.0f} req/s",
        )
        with self.app.app_context(), db.connection_context():
            credited = (
                Transaction.select()
                .where(
                    Transaction.order_id.startswith("CB"), Transaction.status == "paid"
                )
                .count()
            )
            credits = (
                LedgerEntry.select()
                .join(Transaction)
                .where(
                    Transaction.order_id.startswith("CB"), LedgerEntry.kind == "credit"
                )
                .count()
            )
        errors = full["errors"] + half["errors"]
        # A reused body answers "duplicate": not an error, but we size to avoid it.
        bad = full["bad"] + half["bad"]
        duplicates = credits - credited
        self.add(
            "1 callback: errors + duplicate credits",
            errors + bad + duplicates,
            "= 0",
            errors + bad + duplicates == 0,
            note=f"{credited} credited; errors {errors}, not credited {bad}, "
            f"duplicate credits {duplicates}, bodies reused "
            f"{full['reused'] + half['reused']}",
        )

    def bench_history(self):
        session = self.login(
            "/login", {"number": HISTORY_CONTRACT, "password": PASSWORD}
        )
        cookie = self.cookie_header(session)
        for label, headers in (
            ("page", cookie),
            ("htmx fragment", cookie + "|HX-Request: true"),
        ):
            path = "/payments?page=3"
            base = self.baseline()
            full = self.wrk(path, headers=headers, expect="payment-table")
            self.add(
                f"2 history {label}: {HISTORY:,} transactions",
                full["rate"],
                ">= 0.35",
                full["rate"] >= 0.35 * base and full["errors"] == 0,
                baseline=base,
                unit="req/s",
                note=f"errors {full['errors']}, bad {full['bad']}",
            )
            half = self.paced(
                path, full["rate"] / 2, headers=headers, expect="payment-table"
            )
            p95 = half["p95_us"] / 1000
            self.add(
                f"2 history {label}: p95 at half load",
                p95,
                "< 30 ms",
                p95 < 30,
                unit="ms",
                note=f"at {half['rate']:.0f} req/s",
            )

    def bench_web_memory(self):
        """One worker, never recycled, serves REQUESTS pages; then read its RSS."""
        port = servers.free_port()
        # --max-requests 0: the deployed worker restarts after ~5,000 requests,
        # which would hide a leak; here it must live through all of them.
        process, _ = servers.gunicorn(
            port,
            self.env,
            self.workdir,
            "--workers",
            "1",
            "--max-requests",
            "0",
            name="gunicorn-memory",
        )
        try:
            session = self.login(
                "/login", {"number": HISTORY_CONTRACT, "password": PASSWORD}, port=port
            )
            cookie = self.cookie_header(session)
            runs = [
                ("/payments?page=3", cookie, "payment-table"),
                ("/payments?page=7", cookie + "|HX-Request: true", "payment-table"),
                ("/", cookie, ""),
                ("/healthz", "", "ok"),
            ]
            served, bad, turn = 0, 0, 0
            while served < REQUESTS:
                path, headers, expect = runs[turn % len(runs)]
                summary = servers.wrk(
                    f"http://127.0.0.1:{port}{path}",
                    2,
                    8,
                    headers=headers,
                    expect=expect,
                )
                served += summary["requests"]
                bad += summary["errors"] + summary["bad"]
                turn += 1
            worker = servers.children(process.pid)[0]
            rss = servers.memory_mb(worker)
        finally:
            process.stop()
        self.add(
            "7 memory: web worker RSS",
            rss,
            "< 100 MB",
            rss < 100 and not bad,
            unit="MB",
            note=f"one gunicorn worker after {served:,} requests "
            f"(history page, fragment, home, /healthz); "
            f"{bad} errors",
        )

    # -- 3: the console monitor --------------------------------------------------

    def monitor_filters(self):
        """Period, status and name: at least 100 pages of 20 rows match."""
        from cabinet import monitor
        from cabinet.clock import local_midnight_utc, local_today

        per_day = TRANSACTIONS * 0.05 * 0.83 / 365  # Ivanovs' successful payments
        days = min(365, max(30, int(2500 / per_day) + 1))
        last = local_today()
        first = last - timedelta(days=days - 1)
        filters = monitor.Filters(
            start=local_midnight_utc(first),
            end=local_midnight_utc(last + timedelta(days=1)),
            search=SURNAMES[0],
            status="success",
        )
        args = {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "status": "success",
            "q": SURNAMES[0],
        }
        return filters, args, first, last

    def bench_monitor(self):
        from cabinet import monitor
        from cabinet.clock import local_midnight_utc
        from cabinet.models import ModuleInstance

        size = self.app.config["PAGE_SIZE"]
        with self.app.app_context(), db.connection_context():
            filters, args, first, last = self.monitor_filters()
            instance = ModuleInstance.get_by_id(self.instance_id)
            query = monitor.selection(instance, filters)
            ordered = query.order_by(
                monitor.Transaction.created_at.desc(), monitor.Transaction.id.desc()
            )
            before_100th = ordered.offset(99 * size - 1).limit(1).first()
            cursor = monitor.encode_cursor(before_100th)
            days = monitor.local_days(first, last, local_midnight_utc)
            self.explain(query, cursor, instance, filters, days)
        session = self.login(
            "/console/login", {"login": OPERATOR[0], "password": OPERATOR[1]}
        )
        base = f"{self.base}/console/monitor"
        repeats = 10 if QUICK else 20
        note = (
            f"{args['from']}..{args['to']}, status=success, q={SURNAMES[0]}; "
            f"{repeats} requests"
        )
        for label, path, extra, headers in (
            ("first page", "", {}, {}),
            ("100th page", "", {"after": cursor}, {}),
            (
                "100th page, htmx rows",
                "",
                {"after": cursor},
                {"HX-Request": "true", "HX-Target": "monitor-rows"},
            ),
            ("totals + chart, loaded after", "/summary", {}, {"HX-Request": "true"}),
        ):
            times = []
            for _ in range(repeats + 2):
                started = time.perf_counter()
                answer = session.get(
                    base + path,
                    headers=headers,
                    timeout=60,
                    params={"instance": "isp", **args, **extra},
                )
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.status_code
            times = sorted(times[2:])  # the first two warm the caches
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            self.add(
                f"3 monitor {label}", p95, "p95 < 50 ms", p95 < 50, unit="ms", note=note
            )

    def explain(self, query, cursor, instance, filters, days):
        """Keep the query plans of the monitor's page and summary."""
        from cabinet import monitor

        sqlite = self.database == "sqlite"
        prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ANALYZE "
        moment, pk = monitor.decode_cursor(cursor)
        paged = (
            query.where(
                monitor.Transaction.created_at <= moment,
                (monitor.Transaction.created_at < moment)
                | (monitor.Transaction.id < pk),
            )
            .order_by(
                monitor.Transaction.created_at.desc(), monitor.Transaction.id.desc()
            )
            .limit(21)
        )
        summary = monitor.summary_query(instance, filters, days)
        lines = [
            f"== {self.database}: the monitor's 100th page (after a cursor), "
            f"as monitor.page() runs it, and its totals + chart "
            f"(monitor.summary_query)"
        ]
        for title, q in (("page", paged), ("summary", summary)):
            sql, params = q.sql()
            # The summary runs with monitor.summary()'s planner setting.
            summary_run = title == "summary"
            with monitor.search_by_index(filters) if summary_run else nullcontext():
                plan = db.execute_sql(prefix + sql, params).fetchall()
            lines.append(f"-- {title}: {sql}")
            lines += ["   " + " | ".join(str(c) for c in r) for r in plan]
        self.explained = "\n".join(lines)

    # -- 4: the CSV export --------------------------------------------------------

    def bench_csv(self):
        from cabinet import monitor
        from cabinet.clock import local_midnight_utc, local_today
        from cabinet.models import ModuleInstance

        with self.app.app_context(), db.connection_context():
            last = local_today()
            first = last - timedelta(days=366)
            filters = monitor.Filters(
                start=local_midnight_utc(first),
                end=local_midnight_utc(last + timedelta(days=1)),
            )
            instance = ModuleInstance.get_by_id(self.instance_id)
            query = monitor.selection(instance, filters).order_by(
                monitor.Transaction.created_at.desc(), monitor.Transaction.id.desc()
            )
            sql, params = query.sql()
            started = time.perf_counter()
            count = self.raw_select(sql, params)
            raw = count / (time.perf_counter() - started)
        session = self.login(
            "/console/login", {"login": OPERATOR[0], "password": OPERATOR[1]}
        )
        workers = servers.children(self.gunicorn.pid)
        for pid in workers:
            servers.reset_peak(pid)
        before = max(servers.memory_mb(pid) for pid in workers)
        started = time.perf_counter()
        lines = 0
        with session.get(
            f"{self.base}/console/monitor.csv",
            params={
                "instance": "isp",
                "from": first.isoformat(),
                "to": last.isoformat(),
            },
            stream=True,
            timeout=600,
        ) as answer:
            assert answer.status_code == 200, answer.status_code
            for chunk in answer.iter_content(1 << 16):
                lines += chunk.count(b"\n")
        rate = (lines - 1) / (time.perf_counter() - started)
        peak = max(servers.memory_mb(pid, "VmHWM") for pid in workers)
        self.add(
            f"4 CSV export: {lines - 1:,} rows",
            rate,
            ">= 0.5",
            rate >= 0.5 * raw and lines - 1 == count,
            baseline=raw,
            unit="rows/s",
            note=f"raw SELECT of the same {count:,} rows is the baseline",
        )
        self.add(
            "4 CSV export: peak worker memory",
            peak,
            "< 150 MB",
            peak < 150,
            unit="MB",
            note=f"{before:.0f} MB before the export",
        )

    def raw_select(self, sql, params):
        """Fetch the rows of a query with the driver into a discarded sink."""
        connection = db.connection()
        cursor = connection.cursor()
        cursor.execute(sql, params)
        count = 0
        while rows := cursor.fetchmany(5000):
            count += len(rows)
        cursor.close()
        return count

    # -- 6: the status check ------------------------------------------------------

    def bench_status_check(self):
        from cabinet import status_check
        from cabinet.models import Transaction

        with self.app.app_context(), db.connection_context():
            started = time.perf_counter()
            stats = status_check.run()
            seconds = time.perf_counter() - started
            resolved = (
                Transaction.select()
                .where(
                    Transaction.order_id.startswith("OPEN"),
                    Transaction.status == "paid",
                )
                .count()
            )
        self.add(
            f"6 status check: {OPEN:,} open orders",
            stats.requests,
            "<= 3 requests, all resolved",
            stats.requests <= 3 and resolved == OPEN,
            baseline=OPEN,
            unit="requests",
            note=f"{resolved:,} resolved in {seconds:.1f} s "
            f"({OPEN / seconds:,.0f} orders/s), {stats.errors} errors",
        )

    # -- 5: the daily autopay -----------------------------------------------------

    def bench_autopay(self):
        from rq import Queue

        from cabinet import autopay
        from cabinet.extensions import QUEUE_NAME
        from cabinet.models import AutopayCharge

        requests.post(
            f"{self.sandbox_url}/_sandbox/faults",
            json={"latency_ms": 100, "drop_callbacks": True},
            timeout=5,
        )
        connection = redis_lib.Redis.from_url(REDIS_URL)
        queue = Queue(QUEUE_NAME, connection=connection)
        with self.app.app_context(), db.connection_context():
            started = time.perf_counter()
            stats = autopay.run()
            seconds = time.perf_counter() - started
            planned = AutopayCharge.select().count()
        jobs = queue.jobs
        queued = sum(len(job.args[0]) for job in jobs)
        self.add(
            f"5 autopay: plan and enqueue {AUTOPAYS:,} due",
            seconds,
            "< 10 s",
            seconds < 10 and planned == AUTOPAYS and queued == AUTOPAYS,
            unit="s",
            note=f"{planned:,} charges, {queued:,} of them in {len(jobs):,} batch "
            f"jobs, {stats.changed:,} changed",
        )
        workers = servers.rq_workers(CHARGE_WORKERS, self.env, self.workdir)
        self.processes += workers
        time.sleep(3)  # the workers start and warm up
        for latency in CHARGE_LATENCIES_MS:
            self.measure_charges(
                "5 autopay", latency, f"{CHARGE_WORKERS} `python worker.py`"
            )
        rss = max(servers.memory_mb(w.pid) for w in workers)
        for worker in workers:
            worker.stop()
            self.processes.remove(worker)
        self.worker_rss = rss
        queue.empty()
        requests.delete(f"{self.sandbox_url}/_sandbox/faults", timeout=5)

    def measure_charges(self, step, latency_ms, who):
        """Charges/s for CHARGE_SECONDS at a sandbox latency, against the limit;
        the peak of concurrent /recurrent/ the sandbox saw in that time."""
        from cabinet.models import AutopayCharge

        requests.post(
            f"{self.sandbox_url}/_sandbox/faults",
            json={"latency_ms": latency_ms, "drop_callbacks": True},
            timeout=5,
        ).raise_for_status()
        requests.delete(f"{self.sandbox_url}/_bench/concurrency", timeout=5)
        limit = self.app.config["RECURRENT_CONCURRENCY"] / (latency_ms / 1000)
        done = AutopayCharge.status.in_(("succeeded", "retry", "failed"))

        def finished():
            with self.app.app_context(), db.connection_context():
                return AutopayCharge.select().where(done).count()

        time.sleep(1)  # the tries under way at the old latency end
        first, started = finished(), time.perf_counter()
        time.sleep(CHARGE_SECONDS)
        charged = finished() - first
        rate = charged / (time.perf_counter() - started)
        peak = requests.get(f"{self.sandbox_url}/_bench/concurrency", timeout=5).json()
        concurrency = self.app.config["RECURRENT_CONCURRENCY"]
        allowed = concurrency / (peak.get("mean_ms") or latency_ms) * 1000
        self.add(
            f"{step}: charges/s, {latency_ms} ms latency",
            rate,
            ">= 0.9",
            rate >= 0.9 * limit,
            baseline=limit,
            unit="charges/s",
            note=f"{charged:,} charges in {CHARGE_SECONDS} s by {who}; baseline: "
            f"RECURRENT_CONCURRENCY / latency; the sandbox answered in "
            f"{concurrency / allowed * 1000:.0f} ms on average, so its slots allowed "
            f"{allowed:.1f}/s",
        )
        self.add(
            f"{step}: peak concurrent /recurrent/, {latency_ms} ms latency",
            peak["peak"],
            "<= 5",
            peak["peak"] <= self.app.config["RECURRENT_CONCURRENCY"],
            unit="requests",
            note=f"{peak['total']:,} requests",
        )

    # -- 7: an RQ worker's memory -------------------------------------------------

    def bench_rq_memory(self):
        output = subprocess.run(
            [sys.executable, "-m", "bench.rq_memory", str(JOBS)],
            env=self.env,
            cwd=servers.ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        ).stdout
        report = json.loads(output.strip().splitlines()[-1])
        self.add(
            f"7 memory: RQ worker after {report['jobs']:,} jobs",
            report["rss_mb"],
            "< 150 MB",
            report["rss_mb"] < 150,
            unit="MB",
            note=f"one process (SimpleWorker); {report['rss_mb_early']:.0f} MB "
            f"after {report['early']} jobs; {report['seconds']:.0f} s; "
            f"`python worker.py` after the charges: {self.worker_rss:.0f} MB",
        )

    # -- 8, 9: the billing outbox --------------------------------------------------

    # -- 11: one process (flask serve) against gunicorn -------------------------

    def bench_serve(self):
        """Callbacks and the history page under `flask serve` against gunicorn.

        Both serve the same database and Redis, gunicorn, serve, serve, gunicorn
        (a linear drift of the machine falls on both alike); serve's own
        workers run beside it, as in a small ISP's one process.
        """
        port = servers.free_port()
        serve_base = f"http://127.0.0.1:{port}"
        # As many job threads as step 5 has worker processes: the same slots.
        process = servers.serve(port, self.env, self.workdir, workers=CHARGE_WORKERS)
        order = [self.base, serve_base, serve_base, self.base]
        try:
            with self.app.app_context(), db.connection_context():
                files = []
                for n, _ in enumerate(order):
                    bodies = self.seeder.callbacks(2500 * DURATION, prefix=f"S{n}")
                    files.append(self.workdir / f"serve-callbacks-{n}.txt")
                    files[-1].write_text("\n".join(bodies) + "\n")
            for base in (self.base, serve_base):  # warm up, as step 1
                servers.wrk(f"{base}/healthz", 3, CONNECTIONS)
            callbacks = [
                self.wrk(
                    "/uniteller/isp/notify", base=base, bodies=path, expect="credited"
                )
                for base, path in zip(order, files, strict=True)
            ]
            session = self.login(
                "/login", {"number": HISTORY_CONTRACT, "password": PASSWORD}
            )
            cookie = self.cookie_header(session)
            history = [
                self.wrk(
                    "/payments?page=3",
                    base=base,
                    headers=cookie,
                    expect="payment-table",
                )
                for base in order
            ]
            self.serve_charges()
        finally:
            process.stop()
        for label, runs in (("callbacks", callbacks), ("history page", history)):
            by = {self.base: [], serve_base: []}
            for base, run in zip(order, runs, strict=True):
                by[base].append(run["rate"])
            gunicorn = sum(by[self.base]) / 2
            one = sum(by[serve_base]) / 2
            wrong = sum(run["errors"] + run["bad"] for run in runs)
            named = [
                ("serve" if base == serve_base else "gunicorn", run["rate"])
                for base, run in zip(order, runs, strict=True)
            ]
            self.add(
                f"11 serve: {label}",
                one,
                ">= 0.8",
                one >= 0.8 * gunicorn and wrong == 0,
                baseline=gunicorn,
                unit="req/s",
                note="baseline: the same under gunicorn (deploy/gunicorn.conf.py); "
                "runs "
                + ", ".join(f"{name} {rate:,.0f}" for name, rate in named)
                + f"; errors and wrong answers {wrong}",
            )

    def serve_charges(self):
        """Autopay charges by serve's own job threads, against Uniteller's limit."""
        from rq import Queue

        from cabinet import autopay
        from cabinet.autopay import states
        from cabinet.autopay.charging import enqueue_charges
        from cabinet.extensions import QUEUE_NAME
        from cabinet.models import AutopayCharge

        with self.app.app_context(), db.connection_context():
            autopay.run()  # plans the period's charges, unless step 5 did
            # Step 5 left its unfinished charges due with their jobs dropped.
            due = (
                AutopayCharge.select(AutopayCharge.id)
                .where(AutopayCharge.status == states.DUE)
                .limit(CHARGE_SECONDS * 300 * len(CHARGE_LATENCIES_MS))
            )
            enqueue_charges([row.id for row in due])
        time.sleep(2)  # the job threads pick up and warm up
        for latency in CHARGE_LATENCIES_MS:
            self.measure_charges(
                "11 serve", latency, f"serve's {CHARGE_WORKERS} job threads"
            )
        Queue(QUEUE_NAME, connection=redis_lib.Redis.from_url(REDIS_URL)).empty()
        requests.delete(f"{self.sandbox_url}/_sandbox/faults", timeout=5)

    def billing_connector(self, name, concurrency=4):
        """Add an active OSMP connector to the emulated billing (no check first)."""
        from cabinet import billing
        from cabinet.models import ModuleInstance

        return billing.add_connector(
            ModuleInstance.get_by_id(self.instance_id),
            name,
            "osmp",
            {
                "url": f"{self.sandbox_url}/billing/osmp",
                "login": BILLING["login"],
                "password": BILLING["password"],
                "timeout": "10",
                "concurrency": str(concurrency),
            },
        )

    @staticmethod
    def set_connector(connector, active):
        from cabinet import billing

        return billing.update_connector(connector, connector.params, is_active=active)

    def bench_outbox(self):
        """Callbacks with an OSMP connector against the same without, alternating.

        No worker runs: the measure is what the outbox adds to the callback itself
        (the connectors' read, the delivery row, the job's enqueue after commit).
        """
        from rq import Queue

        from cabinet.extensions import QUEUE_NAME
        from cabinet.models import BillingDelivery, Transaction

        path = "/uniteller/isp/notify"
        # Without, with, with, without, twice: a drift of the machine that is
        # linear in time falls on both sides alike (alternating would put it all
        # on one), and a burst of load elsewhere weighs half as much.
        runs = [
            (active, f"O{letter}")
            for active, letter in zip(
                (False, True, True, False) * 2, "ABCDEFGH", strict=True
            )
        ]
        files = {}
        with self.app.app_context(), db.connection_context():
            for _, prefix in runs:
                bodies = self.seeder.callbacks(2500 * DURATION, prefix=prefix)
                files[prefix] = self.workdir / f"callbacks-{prefix}.txt"
                files[prefix].write_text("\n".join(bodies) + "\n")
            if self.database != "sqlite":
                db.execute_sql("ANALYZE")
            connector = self.set_connector(self.billing_connector("outbox"), False)
        servers.wrk(f"{self.base}/healthz", 3, CONNECTIONS)  # warm up, as step 1
        rates, order = {False: [], True: []}, []
        errors = bad = reused = 0
        try:
            for active, prefix in runs:
                with self.app.app_context(), db.connection_context():
                    connector = self.set_connector(connector, active)
                run = self.wrk(path, bodies=files[prefix], expect="credited")
                # wrk stops with requests in flight: let gunicorn answer them
                # under the state they were sent in.
                time.sleep(1)
                rates[active].append(run["rate"])
                order.append((active, run["rate"]))
                errors, bad = errors + run["errors"], bad + run["bad"]
                reused += run["reused"]
        finally:
            with self.app.app_context(), db.connection_context():
                self.set_connector(connector, False)
            Queue(QUEUE_NAME, connection=redis_lib.Redis.from_url(REDIS_URL)).empty()
        with self.app.app_context(), db.connection_context():
            counts = {}
            for active, prefix in runs:
                credited = (
                    Transaction.select()
                    .where(
                        Transaction.order_id.startswith(prefix),
                        Transaction.status == "paid",
                    )
                    .count()
                )
                rows = (
                    BillingDelivery.select()
                    .join(Transaction)
                    .where(
                        Transaction.order_id.startswith(prefix),
                        BillingDelivery.connector == connector.id,
                    )
                    .count()
                )
                old = counts.get(active, (0, 0))
                counts[active] = (old[0] + credited, old[1] + rows)
        without = sum(rates[False]) / len(rates[False])
        with_ = sum(rates[True]) / len(rates[True])
        self.add(
            "8 outbox: callbacks with a connector",
            with_,
            ">= 0.9",
            with_ >= 0.9 * without,
            baseline=without,
            unit="req/s",
            note="baseline: the same callbacks without a connector; runs "
            + ", ".join(f"{'with' if a else 'without'} {r:,.0f}" for a, r in order),
        )
        (credited, rows), (credited_off, rows_off) = counts[True], counts[False]
        wrong = abs(rows - credited) + rows_off + errors + bad
        self.add(
            "8 outbox: deliveries per credit, errors",
            wrong,
            "= 0",
            wrong == 0 and credited > 0,
            note=f"with a connector {credited:,} credited, {rows:,} delivery rows; "
            f"without {credited_off:,} credited, {rows_off:,} rows; errors {errors}, "
            f"not credited {bad}, bodies reused {reused}",
        )

    def bench_delivery(self):
        """Deliveries/s to the billing at a set latency, against slots / latency."""
        from rq import Queue, Worker

        from cabinet.billing.outbox import record_deliveries
        from cabinet.db import write_unit
        from cabinet.extensions import QUEUE_NAMES
        from cabinet.models import BillingDelivery, Contract, Transaction

        limit = BILLING_CONCURRENCY / (BILLING_LATENCY_MS / 1000)
        # More than the workers can send in the measured time, warm-up included.
        count = int(limit * (DELIVERY_SECONDS + 10) * 1.5)
        connection = redis_lib.Redis.from_url(REDIS_URL)
        for name in QUEUE_NAMES:  # what earlier steps left must not take workers
            Queue(name, connection=connection).empty()
        faults = f"{self.sandbox_url}/billing/_faults"
        requests.post(faults, json={"delay_ms": BILLING_LATENCY_MS}, timeout=5)
        with self.app.app_context(), db.connection_context():
            connector = self.billing_connector("delivery", BILLING_CONCURRENCY)
            paid = list(
                Transaction.select(Transaction, Contract)
                .join(Contract)
                .where(
                    Transaction.order_id.startswith("S"), Transaction.status == "paid"
                )
                .order_by(Transaction.id)
                .limit(count)
            )
            with write_unit():  # one unit: the jobs are enqueued at its commit
                for transaction in paid:
                    record_deliveries(transaction, "credit", transaction.amount)

        def done():
            with self.app.app_context(), db.connection_context():
                return (
                    BillingDelivery.select()
                    .where(
                        BillingDelivery.connector == connector.id,
                        BillingDelivery.state == "done",
                    )
                    .count()
                )

        workers = servers.rq_workers(DELIVERY_WORKERS, self.env, self.workdir)
        self.processes += workers
        try:
            # Each worker builds the app on start, a second or more of CPU: the
            # measure begins once all of them take jobs.
            deadline = time.monotonic() + 60
            while (
                Worker.count(connection=connection) < DELIVERY_WORKERS
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            time.sleep(2)
            pids = [w.pid for w in workers]
            sandbox = [self.processes[0].pid]  # started first, in setup
            cpu = servers.cpu_seconds(pids), servers.cpu_seconds(sandbox)
            first, started = done(), time.perf_counter()
            time.sleep(DELIVERY_SECONDS)
            delivered = done() - first
            rate = delivered / (time.perf_counter() - started)
            cpu = (
                servers.cpu_seconds(pids) - cpu[0],
                servers.cpu_seconds(sandbox) - cpu[1],
            )
        finally:
            for worker in workers:  # all at once: the others would go on sending
                worker.popen.terminate()
            for worker in workers:
                worker.stop()
                self.processes.remove(worker)
            requests.delete(faults, timeout=5)
            for name in QUEUE_NAMES:
                Queue(name, connection=connection).empty()
        peak = requests.get(
            f"{self.sandbox_url}/_bench/concurrency/billing", timeout=5
        ).json()
        state = requests.get(f"{self.sandbox_url}/billing/_state", timeout=30).json()
        with self.app.app_context(), db.connection_context():
            self.set_connector(connector, False)
            states = dict(
                BillingDelivery.select(BillingDelivery.state, fn.COUNT(1))
                .where(BillingDelivery.connector == connector.id)
                .group_by(BillingDelivery.state)
                .tuples()
            )
        repeats = sum(p["repeats"] for p in state["payments"])
        self.add(
            f"9 delivery: deliveries/s, {BILLING_LATENCY_MS} ms latency",
            rate,
            ">= 0.8",
            rate >= 0.8 * limit,
            baseline=limit,
            unit="deliveries/s",
            note=f"{delivered:,} in {DELIVERY_SECONDS} s by {DELIVERY_WORKERS} "
            f"workers; baseline: concurrency {BILLING_CONCURRENCY} / "
            f"{BILLING_LATENCY_MS} ms; {len(paid):,} written, by state "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(states.items()))
            + f"; CPU per delivery: workers {cpu[0] / max(delivered, 1) * 1000:.0f} ms,"
            f" the sandbox {cpu[1] / max(delivered, 1) * 1000:.0f} ms",
        )
        failed = states.get("failed", 0) + states.get("attention", 0)
        self.add(
            "9 delivery: peak concurrent OSMP calls",
            peak["peak"],
            f"<= {BILLING_CONCURRENCY}",
            peak["peak"] <= BILLING_CONCURRENCY and not failed and not repeats,
            unit="requests",
            note=f"{peak['total']:,} calls; {len(state['payments']):,} payments "
            f"at the billing, {repeats} repeated txn_id; {failed} failed",
        )

    # -- 10: the contracts CSV import ---------------------------------------------

    def bench_import(self):
        """Import IMPORT_ROWS new contracts, the same file again, every row changed."""
        from cabinet import contract_import
        from cabinet.clock import utcnow
        from cabinet.db import write_unit
        from cabinet.models import Contract

        rows = [
            (
                f"I{n:07d}",
                f"Абонент {n}",
                f"a{n}@example.com",
                f"+7916{n:07d}",
                f"{n % 5000 - 2500}.{n % 100:02d}",
                "blocked" if n % 50 == 0 else "active",
            )
            for n in range(IMPORT_ROWS)
        ]
        header = "number;name;email;phone;balance;status\n"
        data = (header + "".join(";".join(r) + "\n" for r in rows)).encode()
        changed = data.replace("Абонент".encode(), "Абонентка".encode())
        timings = {}
        with self.app.app_context(), db.connection_context():
            now = utcnow()
            started = time.perf_counter()
            with write_unit():  # the baseline: the same rows, ready, insert_many
                for start in range(0, len(rows), contract_import.BATCH):
                    Contract.insert_many(
                        [
                            {
                                "number": "X" + number[1:],
                                "name": name,
                                "email": email,
                                "phone": phone,
                                "password_hash": "",
                                "status": status,
                                "source": "import",
                                "billing_balance": int(balance.replace(".", "")),
                                "billing_balance_at": now,
                                "created_at": now,
                                "updated_at": now,
                            }
                            for number, name, email, phone, balance, status in rows[
                                start : start + contract_import.BATCH
                            ]
                        ]
                    ).execute()
            baseline = time.perf_counter() - started
            with write_unit():
                Contract.delete().where(Contract.number.startswith("X")).execute()
            for what, body, expected in (
                ("created", data, "created"),
                ("unchanged", data, "unchanged"),
                ("updated", changed, "updated"),
            ):
                started = time.perf_counter()
                report = contract_import.run(body, rows_max=len(rows))
                timings[what] = time.perf_counter() - started
                assert getattr(report, expected) == len(rows), report.counts()
            passwords = "".join(
                f"P{n:07d};Абонент {n};pass-{n:06d}\n" for n in range(IMPORT_PASSWORDS)
            )
            started = time.perf_counter()
            report = contract_import.run(f"number;name;password\n{passwords}".encode())
            per_password = (time.perf_counter() - started) / IMPORT_PASSWORDS
            assert report.created == IMPORT_PASSWORDS, report.counts()
        created = timings["created"]
        self.add(
            f"10 import: {len(rows):,} new contracts",
            len(rows) / created,
            ">= 0.1",
            created / baseline <= 10,
            baseline=len(rows) / baseline,
            unit="rows/s",
            note="plain insert_many of the same rows, parsed, in one unit, is the "
            "baseline",
        )
        for what, seconds in timings.items():
            self.add(
                f"10 import: {len(rows):,} rows {what}",
                seconds,
                "< 60 s",
                seconds < 60,
                unit="s",
                note="" if what != "created" else "without the password column",
            )
        self.add(
            "10 import: the password column, per row",
            per_password * 1000,
            "measured",
            True,
            unit="ms",
            note=f"werkzeug's scrypt in a pool of {os.cpu_count()} processes "
            f"({IMPORT_PASSWORDS} rows): {len(rows):,} passwords take "
            f"{per_password * len(rows) / 60:,.0f} min",
        )

    def run(self):
        steps = [
            ("web", self.bench_web),
            ("monitor", self.bench_monitor),
            ("csv", self.bench_csv),
            ("status", self.bench_status_check),
            ("autopay", self.bench_autopay),
            ("rqmemory", self.bench_rq_memory),
            # Last: they add orders, deliveries and connectors the steps above
            # would otherwise count.
            ("outbox", self.bench_outbox),
            ("delivery", self.bench_delivery),
            ("import", self.bench_import),
            ("serve", self.bench_serve),
        ]
        steps = [(name, step) for name, step in steps if not ONLY or name in ONLY]
        self.worker_rss = 0
        self.explained = ""
        for name, step in steps:
            started = time.perf_counter()
            try:
                step()
            except Exception as exc:  # one broken benchmark must not hide the rest
                self.add(
                    f"{name}: failed",
                    0,
                    "runs",
                    False,
                    note=f"{type(exc).__name__}: {exc}"[:300],
                )
            print(
                f"  [{self.database}] {name}: {time.perf_counter() - started:.0f} s",
                flush=True,
            )


def machine():
    """Describe the machine the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout
    total = memory.splitlines()[1].split()[1] if memory else "?"
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {total} RAM, "
        f"Python {platform.python_version()}"
    )


def table(results):
    """Format the results as a text table."""
    lines = [
        f"{'benchmark':48} {'db':10} {'value':>12} {'baseline':>12} "
        f"{'ratio':>6} {'target':>16} met"
    ]
    for r in results:
        value = f"{r['value']:,.1f} {r['unit']}".strip()
        base = "" if r["baseline"] is None else f"{r['baseline']:,.1f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(
            f"{r['name'][:48]:48} {r['database']:10} {value:>12} {base:>12} "
            f"{ratio:>6} {r['target']:>16} {'yes' if r['met'] else 'NO'}"
        )
    return "\n".join(lines)


def _missing(message):
    """Say what the benchmarks need, in one line, and exit 2."""
    print(message, file=sys.stderr)
    sys.exit(2)


def preflight():
    """Exit with one line saying what is missing, before anything is seeded."""
    if shutil.which("wrk") is None:
        _missing(
            "Error: the benchmarks need wrk, the load generator: apt-get install wrk"
        )
    try:
        redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis_lib.RedisError:
        _missing(f"Error: the benchmarks need Redis at {REDIS_URL} (BENCH_REDIS_URL)")
    if "postgresql" in DATABASES:
        try:
            psycopg2.connect(PG_URL, connect_timeout=2).close()
        except psycopg2.Error:
            _missing(
                f"Error: the benchmarks need PostgreSQL at {PG_URL} (BENCH_PG_URL), "
                "or BENCH_DATABASES=sqlite"
            )


def main():
    """Run, print, write."""
    preflight()
    started = time.perf_counter()
    print(f"bench: {'quick' if QUICK else 'full'} run on {machine()}", flush=True)
    results, notes, plans = [], [], []
    for database in DATABASES:
        workdir = tempfile.mkdtemp(prefix=f"bench-{database}-")
        bench = Bench(database, workdir)
        try:
            bench.setup()
            print(f"  [{database}] set up: {bench.notes[-1]}", flush=True)
            bench.run()
        finally:
            bench.teardown()
            if not os.environ.get("BENCH_KEEP"):
                shutil.rmtree(workdir, ignore_errors=True)
        results += bench.results
        notes += [f"{database}: {note}" for note in bench.notes]
        plans.append(bench.explained)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    EXPLAIN.write_text("\n\n".join(plans) + "\n")
    print()
    print(table(results))
    print()
    for r in results:
        if r["note"]:
            print(f"{r['name']} [{r['database']}]: {r['note']}")
    print("\n".join(notes))
    print(
        f"\nQuery plans: {EXPLAIN}; JSON: {RESULTS}; "
        f"{time.perf_counter() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main()
