"""What every command shares: errors as `Error: …` and exit 2."""

import sys

import click

from .. import params as module_params
from ..db import db
from ..errors import CabinetError


def fail(message, code=2):
    """Print an error to stderr and exit with `code`."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def call_service(func, *args, **kwargs):
    """Call a service inside a connection; turn our errors into a message and exit 2."""
    with db.connection_context():
        try:
            return func(*args, **kwargs)
        except (CabinetError, module_params.ParamError) as exc:
            fail(exc.message if isinstance(exc, CabinetError) else str(exc))
