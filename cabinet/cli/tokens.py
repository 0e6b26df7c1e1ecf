"""flask token …: API tokens for the provider's own logic."""

import click
from flask.cli import AppGroup

from .common import call_service, fail

token_cli = AppGroup("token", help="API tokens for the provider's own logic.")


@token_cli.command("add")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="What it may call: autopay (the default), contracts, payments, sessions; "
    "repeat for more.",
)
def token_add(name, scopes):
    """Create API token NAME and print it (once: it is kept only hashed)."""
    from peewee import IntegrityError

    from ..api_tokens import create_token

    def add():
        try:
            return create_token(name, scopes)[1]
        except IntegrityError:
            fail(f"token {name!r} exists already")

    click.echo(call_service(add))


@token_cli.command("revoke")
@click.argument("name")
def token_revoke(name):
    """Revoke API token NAME."""
    from ..api_tokens import revoke_token

    def revoke():
        if not revoke_token(name):
            fail(f"no active token {name!r}")

    call_service(revoke)
    click.echo(f"Token {name} revoked.")


@token_cli.command("list")
def token_list():
    """List API tokens (names and dates, never the tokens)."""
    from ..models import ApiToken

    def show():
        for row in ApiToken.select().order_by(ApiToken.name):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            click.echo(
                f"{row.name}\tcreated {row.created_at:%Y-%m-%d}\t{state}\t{row.scopes}"
            )

    call_service(show)
