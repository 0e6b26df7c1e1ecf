"""Background work: `python worker.py` (an RQ worker), `python worker.py cron`."""

import logging
import sys

from rq import Queue, Worker

from cabinet import create_app
from cabinet.extensions import QUEUE_NAME


def run_worker(app):
    """Work the queue, with RQ's scheduler for delayed jobs, until stopped."""
    connection = app.extensions["redis"]
    worker = Worker([Queue(QUEUE_NAME, connection=connection)], connection=connection)
    worker.work(with_scheduler=True, logging_level=app.config["LOG_LEVEL"])


def run_cron(app):
    """Enqueue the scheduled tasks on their cron schedules, until stopped."""
    from cabinet.schedule import build_cron_scheduler

    build_cron_scheduler(app).start()


def main(argv):
    """Pick the role from the command line."""
    app = create_app()
    logging.getLogger("rq").setLevel(app.config["LOG_LEVEL"])
    if argv[1:] == ["cron"]:
        run_cron(app)
    elif argv[1:]:
        sys.exit("usage: python worker.py [cron]")
    else:
        run_worker(app)


if __name__ == "__main__":
    main(sys.argv)
