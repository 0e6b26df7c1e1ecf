"""Benchmarks of the hot paths, each a ratio against a baseline of the same run.

Run with `make bench` (`python -m bench`). Scale knobs (environment variables):

BENCH_QUICK=1               small sizes and short runs (about 2 minutes)
BENCH_DATABASES=sqlite,postgresql   which databases to run on
BENCH_PG_URL                postgresql://postgres@127.0.0.1:5432/test (schema `bench`)
BENCH_PG_SCHEMA=bench      the PostgreSQL schema (created and dropped)
BENCH_REDIS_URL             redis://127.0.0.1:6379/4 (flushed before and after)
BENCH_RESULTS               bench/results.json (explain.txt beside it)
BENCH_ONLY                  only these steps: web,monitor,csv,status,autopay,rqmemory,
                            outbox,delivery,import
BENCH_SEED=42               the generator's seed: the same seed, the same data
BENCH_CONTRACTS             200000 (quick 20000)
BENCH_TRANSACTIONS          1000000 (quick 100000): the monitor and CSV export
BENCH_HISTORY               10000: transactions of the contract whose history is read
BENCH_AUTOPAYS              100000 (quick 10000) due autopays
BENCH_OPEN                  10000 (quick 2000) open transactions for the status check
BENCH_DURATION=8 (quick 4)  seconds of each wrk run
BENCH_CHARGE_SECONDS=20 (quick 10)  seconds the autopay charges are measured
BENCH_BILLING_LATENCY_MS=100  the emulated billing's latency in the delivery step
BENCH_BILLING_CONCURRENCY=4   the OSMP connector's concurrency there
BENCH_DELIVERY_SECONDS=20 (quick 10)  seconds the deliveries are measured
BENCH_JOBS=10000 (quick 1000)  jobs an RQ worker runs before its memory is read
BENCH_REQUESTS=10000        requests a web worker serves before its memory is read
BENCH_IMPORT_ROWS           200000 (quick 20000) rows of the contracts CSV import
BENCH_IMPORT_PASSWORDS=64   rows with a password whose hashing cost is measured
"""

import os

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def knob(name, full, quick, cast=int):
    """Read a scale knob from the environment, with the full or quick default."""
    value = os.environ.get(name)
    if value:
        return cast(value)
    return quick if QUICK else full


SEED = knob("BENCH_SEED", 42, 42)
CONTRACTS = knob("BENCH_CONTRACTS", 200_000, 20_000)
TRANSACTIONS = knob("BENCH_TRANSACTIONS", 1_000_000, 100_000)
HISTORY = knob("BENCH_HISTORY", 10_000, 10_000)
AUTOPAYS = knob("BENCH_AUTOPAYS", 100_000, 10_000)
OPEN = knob("BENCH_OPEN", 10_000, 2_000)
DURATION = knob("BENCH_DURATION", 8, 4)
CHARGE_SECONDS = knob("BENCH_CHARGE_SECONDS", 20, 10)
BILLING_LATENCY_MS = knob("BENCH_BILLING_LATENCY_MS", 100, 100)
BILLING_CONCURRENCY = knob("BENCH_BILLING_CONCURRENCY", 4, 4)
DELIVERY_SECONDS = knob("BENCH_DELIVERY_SECONDS", 20, 10)
JOBS = knob("BENCH_JOBS", 10_000, 1_000)
REQUESTS = knob("BENCH_REQUESTS", 10_000, 10_000)
IMPORT_ROWS = knob("BENCH_IMPORT_ROWS", 200_000, 20_000)
IMPORT_PASSWORDS = knob("BENCH_IMPORT_PASSWORDS", 64, 64)
DATABASES = knob(
    "BENCH_DATABASES", "sqlite,postgresql", "sqlite,postgresql", str
).split(",")
PG_URL = knob(
    "BENCH_PG_URL",
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://postgres@127.0.0.1:5432/test",
    str,
)
PG_SCHEMA = knob("BENCH_PG_SCHEMA", "bench", "bench", str)
ONLY = [step for step in knob("BENCH_ONLY", "", "", str).split(",") if step]
REDIS_URL = knob(
    "BENCH_REDIS_URL", "redis://127.0.0.1:6379/4", "redis://127.0.0.1:6379/4", str
)
SHOP = {"shop_id": "00000777", "login": "777", "password": "bench-shop-password"}
SECRET_KEY = "bench-secret-key"
# The emulated billing's OSMP login (the sandbox serves it at /billing/).
BILLING = {"login": "cabinet", "password": "bench-billing-password"}
