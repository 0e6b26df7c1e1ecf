"""The flask CLI: what an ISP admin scripts with (see README), one module a group."""

import click

from .accounts import contract_cli, operator_cli
from .autopay import autopay_cli
from .billing import billing_cli
from .demo import DEMO, seed_demo
from .instances import config_cli, instance_cli
from .secrets import secrets_cli
from .serve import serve_command
from .tasks import reconcile_command, tasks_cli
from .tokens import token_cli

__all__ = ["DEMO", "init_app"]


@click.command("version")
def version_command():
    """Print this release's version and the schema version it brings."""
    from ..migrations import LATEST
    from ..version import __version__

    click.echo(f"cabinet {__version__} (schema version {LATEST})")


def init_app(app):
    """Register the commands on the app."""
    for command in (
        instance_cli,
        config_cli,
        contract_cli,
        operator_cli,
        seed_demo,
        tasks_cli,
        reconcile_command,
        autopay_cli,
        token_cli,
        billing_cli,
        secrets_cli,
        serve_command,
        version_command,
    ):
        app.cli.add_command(command)
