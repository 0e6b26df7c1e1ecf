"""Run N jobs in one RQ worker process and report its resident memory (JSON line).

python -m bench.rq_memory N   (DATABASE_URL and REDIS_URL from the environment)
SimpleWorker runs every job in this one process, so whatever a job leaves behind
stays: the harder case for memory than `python worker.py`, which forks per job.
"""

import json
import sys
import time

from rq import Queue, SimpleWorker

from cabinet import create_app, jobs
from cabinet.db import db
from cabinet.extensions import QUEUE_NAME
from cabinet.models import AutopayCharge, Transaction

from .servers import memory_mb

EARLY = 200


def job_list(count):
    """A mix of real jobs that read the database and find nothing left to do."""
    with db.connection_context():
        paid = [
            t.id
            for t in Transaction.select(Transaction.id)
            .where(Transaction.status == "paid")
            .limit(1000)
        ]
        # Settled charges only: a due one would really be charged (a /recurrent/
        # request, 100 ms of sandbox latency in the bench), not a no-op.
        charges = [
            c.id
            for c in AutopayCharge.select(AutopayCharge.id)
            .where(AutopayCharge.status.not_in(("due", "resend", "sending")))
            .limit(1000)
        ]
    specs = []
    for n in range(count):
        if n % 2 and charges:
            specs.append(
                Queue.prepare_data(jobs.charge_autopay, (charges[n % len(charges)],))
            )
        else:
            specs.append(Queue.prepare_data(jobs.check_order, (paid[n % len(paid)],)))
    return specs


def run(queue, worker, specs):
    for start in range(0, len(specs), 1000):
        queue.enqueue_many(specs[start : start + 1000])
    worker.work(burst=True, logging_level="WARNING")


def main(count):
    app = create_app()
    connection = app.extensions["redis"]
    queue = Queue(QUEUE_NAME, connection=connection)
    queue.empty()
    worker = SimpleWorker([queue], connection=connection)
    with app.app_context():
        specs = job_list(count)
    started = time.perf_counter()
    run(queue, worker, specs[:EARLY])
    early = memory_mb("self")
    run(queue, worker, specs[EARLY:])
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "jobs": count,
                "early": EARLY,
                "rss_mb_early": early,
                "rss_mb": memory_mb("self"),
                "seconds": seconds,
                "failed": queue.failed_job_registry.count,
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
