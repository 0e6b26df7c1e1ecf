"""Enqueue background jobs by name, once the write unit that needs them commits.

Services name a job (`"charge_autopay"`) instead of importing cabinet.jobs: the
jobs module is the top of the package (it builds the app), so nothing below it
may import it. RQ stores a job's function by its dotted name either way.
"""

import atexit
import logging
import os
import threading
import time
from datetime import timedelta

from flask import current_app, has_request_context
from rq import Queue

from .db import on_commit
from .extensions import QUEUE_NAME, get_queue

JOBS_MODULE = "cabinet.jobs"
# How long a web process gathers ids before it enqueues them as one job.
GATHER_SECONDS = 0.02

log = logging.getLogger(__name__)

# Set when this process is asked to stop (`flask serve`): a batch job begins no
# more of its work and enqueues the rest again, instead of holding the stop up.
stopping = threading.Event()


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


def enqueue_gathered(name, ids):
    """Enqueue job `name` with a list of ids once the unit commits, gathered.

    In a web request the ids join those of other requests of this process and
    go, a moment later, as one job (`name(ids)`): a callback then pays a list
    append instead of a job's creation. Elsewhere (a worker, the CLI) the job is
    enqueued at once. Ids a crash loses before they go are work a sweep of its
    own finds again: use this only for such work.
    """
    ids = list(ids)
    if not has_request_context():
        on_commit(lambda: get_queue().enqueue(job_path(name), ids))
        return
    app = current_app._get_current_object()
    on_commit(lambda: _GATHERER.add(app, name, ids))


class _Gatherer:
    """Ids waiting in this process to be enqueued, and the thread that sends them."""

    def __init__(self):
        self._reset()
        atexit.register(self.flush)

    def _reset(self):
        self.pid = os.getpid()
        self.lock = threading.Lock()
        # Held from taking a batch until it is enqueued: a flush returns only
        # once what was gathered before it is in Redis (the thread's own
        # send under way included), not while a batch is still in flight.
        self.sending = threading.Lock()
        self.wake = threading.Event()
        self.waiting = {}  # (app, job name) -> ids
        self.thread = None

    def add(self, app, name, ids):
        if self.pid != os.getpid():
            self._reset()  # a forked child: the parent's thread is not here
        with self.lock:
            self.waiting.setdefault((app, name), []).extend(ids)
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="cabinet-gatherer", daemon=True
                )
                self.thread.start()
        self.wake.set()

    def _run(self):
        while True:
            self.wake.wait()
            self.wake.clear()
            time.sleep(GATHER_SECONDS)  # let a burst gather
            self.flush()

    def flush(self):
        """Enqueue what waits now, one job per (app, job name)."""
        if self.pid != os.getpid():
            return
        with self.sending:
            with self.lock:
                waiting, self.waiting = self.waiting, {}
            for (app, name), ids in waiting.items():
                try:
                    with app.app_context():
                        get_queue().enqueue(job_path(name), ids)
                except Exception:  # noqa: BLE001  (Redis down: the sweep finds them)
                    log.exception("could not enqueue %s for %d ids", name, len(ids))


_GATHERER = _Gatherer()


def flush_gathered():
    """Enqueue at once what this process gathered (tests; a clean shutdown)."""
    _GATHERER.flush()
