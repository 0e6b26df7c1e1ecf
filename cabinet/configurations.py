"""Module instances and their configurations: several saved, one active."""

import re

from peewee import IntegrityError, fn

from . import params as module_params
from .clock import utcnow
from .db import db, write_unit
from .errors import CabinetError, Conflict, NotFound
from .models import ConfigurationVersion, ModuleConfiguration, ModuleInstance


def add_instance(code, name=None):
    """Create a module instance."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", code):
        raise CabinetError("instance code: lower-case letters, digits, '-' and '_'")
    try:
        with db.atomic():
            return ModuleInstance.create(code=code, name=name or code)
    except IntegrityError:
        raise Conflict(f"instance {code!r} exists already") from None


def get_instance(code):
    """Return an instance by code or raise NotFound."""
    instance = ModuleInstance.by_code(code)
    if instance is None:
        raise NotFound(f"no instance {code!r}")
    return instance


def get_configuration(instance, name):
    """Return an instance's configuration by name or raise NotFound."""
    found = ModuleConfiguration.get_or_none(
        ModuleConfiguration.instance == instance, ModuleConfiguration.name == name
    )
    if found is None:
        raise NotFound(f"no configuration {name!r} in {instance.code!r}")
    return found


def add_configuration(instance, name, assignments, activate=False, who="cli"):
    """Save a named configuration of an instance, optionally making it active."""
    values = module_params.parse_assignments(assignments)
    configuration = _create_configuration(instance, name, values, who, "create")
    if activate:
        activate_configuration(instance, name, who)
    return ModuleConfiguration.get_by_id(configuration.id)


def copy_configuration(source, name, values, who="cli"):
    """Save a new configuration from another; an absent password is the source's."""
    clean = _keep_secrets(module_params.validate(values), source)
    return _create_configuration(source.instance, name, clean, who, "copy")


def _create_configuration(instance, name, values, who, action):
    if not name.strip() or len(name) > 100:
        raise CabinetError("configuration name: 1 to 100 characters")
    try:
        with write_unit():
            configuration = ModuleConfiguration.create(
                instance=instance, name=name.strip(), params=values, created_by=who
            )
            record_version(configuration, action, who)
    except IntegrityError:
        raise Conflict(f"configuration {name!r} exists already") from None
    return configuration


class CannotTakePayments(CabinetError):
    """A configuration that lacks what payments need cannot be made active."""

    status_code = 409


def refuse_incomplete(configuration):
    """Raise CannotTakePayments if a configuration lacks what payments need."""
    missing = module_params.missing_for_payments(configuration.params)
    if missing:
        raise CannotTakePayments(
            f"configuration {configuration.name!r} cannot take payments: "
            f"{', '.join(missing)} not set",
            missing=missing,
        )


def activate_configuration(instance, name, who="cli", action="activate"):
    """Make one configuration of an instance the active one (and only it).

    One that lacks what payments need stays a draft (CannotTakePayments): made
    active, it would stop card payments for every subscriber of the instance.
    """
    with write_unit():
        # Lock the instance's row (PostgreSQL; SQLite's write unit is exclusive):
        # two activations at once run one after the other, not into the index.
        ModuleInstance.update(code=ModuleInstance.code).where(
            ModuleInstance.id == instance.id
        ).execute()
        configuration = ModuleConfiguration.get_or_none(
            ModuleConfiguration.instance == instance, ModuleConfiguration.name == name
        )
        if configuration is None:
            raise NotFound(f"no configuration {name!r} in {instance.code!r}")
        refuse_incomplete(configuration)
        # Off first, then on: the partial unique index allows one active at a time.
        ModuleConfiguration.update(is_active=False).where(
            ModuleConfiguration.instance == instance,
            ModuleConfiguration.is_active == True,  # noqa: E712
        ).execute()
        ModuleConfiguration.update(
            is_active=True, activated_by=who, activated_at=utcnow()
        ).where(ModuleConfiguration.id == configuration.id).execute()
        record_version(configuration, action, who)
    return ModuleConfiguration.get_by_id(configuration.id)


def previous_configuration(instance):
    """Return the configuration active before the active one that can take
    payments (one edited since into a draft is passed over), or None."""
    earlier = (
        ModuleConfiguration.select()
        .where(
            ModuleConfiguration.instance == instance,
            ModuleConfiguration.is_active == False,  # noqa: E712
            ModuleConfiguration.activated_at.is_null(False),
        )
        .order_by(
            ModuleConfiguration.activated_at.desc(), ModuleConfiguration.id.desc()
        )
    )
    for configuration in earlier:
        if not module_params.missing_for_payments(configuration.params):
            return configuration
    return None


def roll_back(instance, who="cli"):
    """Activate again the configuration that was active before this one."""
    previous = previous_configuration(instance)
    if previous is None:
        raise NotFound("no configuration was active before this one")
    return activate_configuration(instance, previous.name, who, action="rollback")


def update_configuration(configuration, values, who="cli"):
    """Replace a configuration's parameters; an absent password keeps the old one."""
    clean = _keep_secrets(module_params.validate(values), configuration)
    with write_unit():
        # The update comes first: it holds the row while the version is numbered.
        ModuleConfiguration.update(params=clean).where(
            ModuleConfiguration.id == configuration.id
        ).execute()
        saved = ModuleConfiguration.get_by_id(configuration.id)
        record_version(saved, "edit", who)
    return saved


def _keep_secrets(clean, configuration):
    """Fill the secrets left empty from a configuration's, unless the gateway moved.

    A saved secret is sent only to the address it was entered for: whoever points
    a configuration at another gateway types the password (and login) again.
    """
    moved = (
        module_params.effective(clean)["gateway_url"]
        != module_params.effective(configuration.params)["gateway_url"]
    )
    for key in ("password", "login"):
        if clean.get(key) or not configuration.params.get(key):
            continue
        if moved:
            raise module_params.ParamError(
                module_params.N_(
                    "enter it again: the Uniteller address changed, and a saved "
                    "secret is never sent to a new address"
                ),
                key,
            )
        clean[key] = configuration.params[key]
    return clean


def record_version(configuration, action, who):
    """Write the configuration's next version (call inside the change's unit)."""
    last = (
        ConfigurationVersion.select(fn.MAX(ConfigurationVersion.number))
        .where(ConfigurationVersion.configuration == configuration)
        .scalar()
    )
    return ConfigurationVersion.create(
        configuration=configuration,
        number=(last or 0) + 1,
        action=action,
        params=module_params.fingerprinted(configuration.params),
        who=who,
    )
