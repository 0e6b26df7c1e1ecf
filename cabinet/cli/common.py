"""What every command shares: errors as `Error: …` and exit 2."""

import sys

import click

from .. import params as module_params
from ..db import db
from ..errors import CabinetError
from ..sealing import SealError


def password_option(help_text="The password."):
    """--password, asked for (hidden) when not given: a password typed on the
    command line lands in `ps` and the shell's history. Without a terminal the
    first line of standard input is read (printf '%s\\n' "$PW" | flask …)."""
    return click.option(
        "--password",
        prompt="Password",
        hide_input=True,
        help=f"{help_text} Asked for when omitted (or read from standard input).",
    )


def secret_assignments(assignments):
    """Replace KEY=- of a secret parameter by a value asked for (hidden) or read
    from standard input, so no secret need be typed on the command line."""
    done = []
    for item in assignments:
        key, sep, value = item.partition("=")
        if sep and value == "-" and key.strip() in module_params.SECRET_PARAMS:
            value = click.prompt(key.strip(), hide_input=True)
        done.append(f"{key}{sep}{value}")
    return done


def fail(message, code=2):
    """Print an error to stderr and exit with `code`."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def call_service(func, *args, **kwargs):
    """Call a service inside a connection; turn our errors into a message and exit 2."""
    with db.connection_context():
        try:
            return func(*args, **kwargs)
        except (CabinetError, module_params.ParamError, SealError) as exc:
            fail(exc.message if isinstance(exc, CabinetError) else str(exc))
