"""The scheduler's tasks: their schedules and last runs; running one by hand."""

import uuid

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import audit
from ..db import write_unit
from ..models import TaskRun
from ..pages import wants_fragment
from ..queueing import enqueue
from ..tasks import TASKS, ScheduleError, cron_of
from .access import current_operator, operator_required
from .blueprint import bp
from .forms import ActionForm, fresh_form_required


def _schedules():
    """Describe each task: its schedule in TIMEZONE and in UTC, its last runs."""
    rows = []
    for task in TASKS.values():
        try:
            utc = cron_of(task)
        except ScheduleError as exc:
            utc = str(exc)
        rows.append(
            {
                "task": task,
                "local": current_app.config[task.cron_setting],
                "utc": utc,
                "runs": TaskRun.latest(task.name),
            }
        )
    return rows


def _task(name):
    """Return the task with this name; 404 if there is none."""
    if name not in TASKS:
        abort(404, _("No such task."))
    return TASKS[name]


def _progress(task, slot):
    """Render a manual run's progress fragment."""
    run = TaskRun.get_or_none(TaskRun.task == task.name, TaskRun.slot == slot)
    return render_template("console/_task-run.html", task=task, slot=slot, run=run)


@bp.route("/tasks")
@operator_required()
def tasks():
    """List the scheduler's tasks, their schedules and last runs."""
    name, slot = request.args.get("task"), request.args.get("slot")
    progress_run = TaskRun.get_or_none(TaskRun.task == name, TaskRun.slot == slot)
    return render_template(
        "console/tasks.html",
        rows=_schedules(),
        action_form=ActionForm(),
        timezone=current_app.config["TIMEZONE"],
        slot=slot,
        task_name=name,
        progress_run=progress_run,
    )


@bp.route("/tasks/<name>/run", methods=["POST"])
@operator_required(admin=True)
@fresh_form_required
def task_run(name):
    """Run a task now in the background; answer its progress (audited)."""
    task = _task(name)
    slot = f"manual:{uuid.uuid4().hex[:12]}"
    with write_unit():
        audit.record(
            current_operator(), "task.run", "task", task.name, None, {"slot": slot}
        )
    # Enqueued after the audit row is committed, like every job.
    enqueue("run_task_now", task.name, slot, timeout=3600)
    if wants_fragment():
        return _progress(task, slot)
    return redirect(url_for("console.tasks", task=task.name, slot=slot))


@bp.route("/tasks/<name>/runs/<slot>")
@operator_required()
def task_progress(name, slot):
    """Answer a manual run's progress fragment; it polls itself until done."""
    return _progress(_task(name), slot)
