"""Background work: `python worker.py` (an RQ worker), `python worker.py cron`."""

import logging
import sys

from rq import Queue, Worker

from cabinet import create_app, jobs
from cabinet.db import db
from cabinet.extensions import QUEUE_NAMES


class CabinetWorker(Worker):
    """RQ's forking worker whose work horses inherit the app built once here.

    Building the app in every horse cost more CPU than a charge's own work.
    """

    def fork_work_horse(self, job, queue):
        # A horse must not share a database connection with this process (or
        # with the next horse): hand it none. Redis' pool reconnects after a fork.
        if not db.is_closed():
            db.close()
        db.obj.close_all()
        super().fork_work_horse(job, queue)


def _warm_up(app):
    """Build, before any fork, what every horse would otherwise build again.

    A horse starts as a copy of this process: the SQL cabinet.prepared builds once
    per database and the translations of notices (jobs speak the default
    language) are then built once per worker, not once per job (a sizeable share
    of a charge's CPU). Neither opens a database connection.
    """
    from flask_babel import gettext

    from cabinet.prepared import Prepared

    with app.app_context():
        Prepared.build_all()
        gettext("Autopay")


def run_worker(app):
    """Work every queue (charges first), with RQ's scheduler for delayed jobs."""
    jobs.use_app(app)
    connection = app.extensions["redis"]
    _warm_up(app)
    worker = CabinetWorker(
        [Queue(name, connection=connection) for name in QUEUE_NAMES],
        connection=connection,
    )
    worker.work(with_scheduler=True, logging_level=app.config["LOG_LEVEL"])


def run_cron(app):
    """Enqueue the scheduled tasks on their cron schedules, until stopped."""
    from cabinet.cron import build_cron_scheduler

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
