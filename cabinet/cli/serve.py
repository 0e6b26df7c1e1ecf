"""flask serve: the web, the workers and the schedulers in one process."""

import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from .common import fail


@click.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1),
    help="Web threads.",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    help="Threads executing background jobs.",
)
@with_appcontext
def serve_command(host, port, threads, workers):
    """Serve the web and run the jobs and schedules, until SIGTERM or SIGINT."""
    from ..serving import ListenError, serve

    app = current_app._get_current_object()
    try:
        code = serve(app, host, port, threads, workers)
    except ListenError as exc:
        fail(str(exc))
    sys.exit(code)
