"""Enqueue background jobs by name, once the write unit that needs them commits.

Services name a job (`"charge_autopay"`) instead of importing cabinet.jobs: the
jobs module is the top of the package (it builds the app), so nothing below it
may import it. RQ stores a job's function by its dotted name either way.
"""

from datetime import timedelta

from rq import Queue

from .db import on_commit
from .extensions import QUEUE_NAME, get_queue

JOBS_MODULE = "cabinet.jobs"


def job_path(name):
    """Return the dotted path RQ imports a job function of cabinet.jobs by."""
    return f"{JOBS_MODULE}.{name}"


def enqueue(name, *args, delay=None, timeout=None, queue=QUEUE_NAME):
    """Enqueue job `name` with `args` on `queue` once the current unit commits."""

    def send():
        target = get_queue(queue)
        if delay is not None:
            target.enqueue_in(
                timedelta(seconds=delay), job_path(name), *args, job_timeout=timeout
            )
        else:
            target.enqueue(job_path(name), *args, job_timeout=timeout)

    on_commit(send)


def enqueue_many(name, args_list, timeout=None):
    """Enqueue job `name` once per argument tuple, in one round trip, after commit."""

    def send():
        queue = get_queue()
        # No MULTI/EXEC: a job hash left without its queue entry by a dropped
        # connection runs never, and the work it stood for has a sweep of its own.
        pipe = queue.connection.pipeline(transaction=False)
        queue.enqueue_many(
            [
                Queue.prepare_data(job_path(name), args, timeout=timeout)
                for args in args_list
            ],
            pipeline=pipe,
        )
        pipe.execute()

    on_commit(send)
