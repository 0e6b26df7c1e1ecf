"""RQ's cron scheduler: every task of cabinet.tasks on its UTC schedule.

Like RQ's cron_config: this module imports the jobs and the task list, and
nothing imports it back (worker.py starts it; `flask serve` loads it by name).
"""

from rq.cron import CronScheduler

from . import jobs
from .extensions import QUEUE_NAME
from .tasks import TASKS, cron_of


def build_cron_scheduler(app, scheduler_class=CronScheduler):
    """Build RQ's cron scheduler with every task on its UTC schedule."""
    scheduler = scheduler_class(
        connection=app.extensions["redis"], logging_level=app.config["LOG_LEVEL"]
    )
    for task in TASKS.values():
        scheduler.register(
            jobs.run_scheduled_task,
            QUEUE_NAME,
            args=(task.name,),
            cron=cron_of(task, app.config),
            job_timeout=3600,
        )
    return scheduler
