"""flask secrets reseal: seal the stored secrets again with SECRETS_KEY's first key."""

import click
from flask.cli import AppGroup

from .common import call_service

secrets_cli = AppGroup("secrets", help="Secrets kept in the database (sealed).")


def _reseal():
    """Write every configuration's and connector's params again: the first key seals."""
    from ..db import write_unit
    from ..models import BillingConnector, ModuleConfiguration

    count = 0
    with write_unit():
        for model in (ModuleConfiguration, BillingConnector):
            for row in model.select():  # read: unsealed with any listed key
                model.update(params=row.params).where(model.id == row.id).execute()
                count += 1
    return count


@secrets_cli.command("reseal")
def secrets_reseal():
    """Seal every stored secret with the first key of SECRETS_KEY (key rotation)."""
    count = call_service(_reseal)
    click.echo(f"Resealed the secrets of {count} configurations and connectors.")
