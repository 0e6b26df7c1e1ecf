"""flask tasks …, flask reconcile: the scheduled tasks and reconciliation."""

import sys

import click
from flask.cli import AppGroup, with_appcontext

from .. import configurations
from .common import call_service, fail


@click.group("tasks", cls=AppGroup, invoke_without_command=True)
@click.pass_context
@with_appcontext
def tasks_cli(ctx):
    """Scheduled tasks: without a subcommand, list them with their last runs."""
    if ctx.invoked_subcommand is None:
        _print_tasks()


@tasks_cli.command("list")
def tasks_list():
    """List the tasks with their schedules and last runs."""
    _print_tasks()


def _print_tasks():
    from flask import current_app

    from ..models import TaskRun
    from ..tasks import TASKS, cron_of

    def show():
        for task in TASKS.values():
            local = current_app.config[task.cron_setting]
            click.echo(f"{task.name}: {task.description}")
            click.echo(
                f"    schedule: {local} ({current_app.config['TIMEZONE']}) "
                f"= {cron_of(task)} UTC  [{task.cron_setting}]"
            )
            runs = TaskRun.latest(task.name)
            if not runs:
                click.echo("    never run")
            for run in runs:
                finished = (
                    run.finished_at.strftime("%H:%M:%S") if run.finished_at else "…"
                )
                click.echo(
                    f"    {run.started_at:%Y-%m-%d %H:%M:%S} UTC -> {finished}  "
                    f"{run.trigger:<6} looked at {run.looked_at}, "
                    f"changed {run.changed}, "
                    f"errors {run.errors}" + (f"  ({run.note})" if run.note else "")
                )

    call_service(show)


@tasks_cli.command("run")
@click.argument("name")
def tasks_run(name):
    """Run task NAME now and print what it did."""
    from ..tasks import TASKS, run_task

    if name not in TASKS:
        fail(f"no task {name!r}; tasks: {', '.join(TASKS)}")
    run = call_service(run_task, name, "manual")
    click.echo(
        f"{name}: looked at {run.looked_at}, changed {run.changed}, "
        f"errors {run.errors}" + (f" ({run.note})" if run.note else "")
    )
    if run.errors:
        sys.exit(1)


@click.command("reconcile")
@click.argument("instance")
@click.option(
    "--from",
    "day_from",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="First day (YYYY-MM-DD, in TIMEZONE).",
)
@click.option(
    "--to",
    "day_to",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="Last day, inclusive.",
)
@click.option("--fix", is_flag=True, help="Credit what Uniteller reports paid.")
@with_appcontext
def reconcile_command(instance, day_from, day_to, fix):
    """Compare INSTANCE's transactions of a period with Uniteller's /results/."""
    from ..reconcile import reconcile
    from ..uniteller.client import UnitellerError

    if day_to < day_from:
        fail("--to is before --from")

    def compare():
        try:
            return reconcile(
                configurations.get_instance(instance),
                day_from.date(),
                day_to.date(),
                fix=fix,
                who="cli",
            )
        except UnitellerError as exc:
            fail(f"Uniteller did not answer: {exc}")

    report = call_service(compare)
    click.echo(
        f"ours: {report.ours} orders; Uniteller: {report.theirs} orders; "
        f"{report.requests} requests"
    )
    for d in report.differences:
        mark = "  fixed" if d.fixed else ""
        click.echo(
            f"{d.kind:<22} {d.order_id:<40} ours={d.ours or '-':<12} "
            f"uniteller={d.theirs or '-'}{mark}"
        )
    left = [d for d in report.differences if not d.fixed]
    click.echo(f"{len(report.differences)} differences, {len(left)} left")
    if left:
        sys.exit(1)
