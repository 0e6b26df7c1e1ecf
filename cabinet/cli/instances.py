"""flask instance …, flask config …: module instances and their configurations."""

import click
from flask.cli import AppGroup

from .. import configurations
from .. import params as module_params
from ..models import ModuleConfiguration
from .common import call_service, secret_assignments

instance_cli = AppGroup("instance", help="Module instances.")
config_cli = AppGroup("config", help="Module configurations.")


@instance_cli.command("add")
@click.argument("code")
@click.option("--name", help="A name people read (default: the code).")
def instance_add(code, name):
    """Create a module instance CODE."""
    instance = call_service(configurations.add_instance, code, name)
    click.echo(f"Instance {instance.code} created.")


@config_cli.command("add")
@click.argument("instance")
@click.argument("name")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter; repeat for each (a secret as KEY=- is asked for, not typed "
    "here). Keys: " + ", ".join(module_params.PARAMS),
)
@click.option("--activate", is_flag=True, help="Make it the active configuration.")
def config_add(instance, name, assignments, activate):
    """Save configuration NAME of INSTANCE."""

    def add():
        return configurations.add_configuration(
            configurations.get_instance(instance),
            name,
            secret_assignments(assignments),
            activate,
            who="cli",
        )

    configuration = call_service(add)
    state = " and activated" if configuration.is_active else ""
    click.echo(f"Configuration {name} of {instance} saved{state}.")


@config_cli.command("edit")
@click.argument("instance")
@click.argument("name")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter to change; repeat for each. The others keep their values.",
)
def config_edit(instance, name, assignments):
    """Change parameters of configuration NAME of INSTANCE (a new version)."""

    def edit():
        found = configurations.get_configuration(
            configurations.get_instance(instance), name
        )
        # Secrets are kept only when the gateway stays (configurations.py).
        kept = {
            k: v
            for k, v in found.params.items()
            if k not in module_params.SECRET_PARAMS
        }
        changed = module_params.assignments_dict(secret_assignments(assignments))
        return configurations.update_configuration(
            found, {**kept, **changed}, who="cli"
        )

    call_service(edit)
    click.echo(f"Configuration {name} of {instance} saved.")


@config_cli.command("activate")
@click.argument("instance")
@click.argument("name")
def config_activate(instance, name):
    """Make configuration NAME the active one of INSTANCE."""
    call_service(
        lambda: configurations.activate_configuration(
            configurations.get_instance(instance), name
        )
    )
    click.echo(f"Configuration {name} of {instance} is active.")


@config_cli.command("show")
@click.argument("instance")
def config_show(instance):
    """List the configurations of INSTANCE with their parameters (secrets hidden)."""

    def show():
        rows = (
            ModuleConfiguration.select()
            .where(
                ModuleConfiguration.instance == configurations.get_instance(instance)
            )
            .order_by(ModuleConfiguration.name)
        )
        for configuration in rows:
            mark = "*" if configuration.is_active else " "
            click.echo(f"{mark} {configuration.name}")
            shown = module_params.redacted(
                module_params.effective(configuration.params)
            )
            for key, value in shown.items():
                click.echo(f"    {key} = {value}")

    call_service(show)
