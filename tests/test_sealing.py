"""Secrets at rest: the database and its dumps hold no usable shop password."""

import re
import subprocess

import pytest
from cryptography.fernet import Fernet

from cabinet import billing, configurations, params
from cabinet.billing import connectors
from cabinet.db import db
from cabinet.models import BillingConnector, ModuleConfiguration
from cabinet.sealing import SealError, seal, unseal
from tests.helpers import in_app


def raw_params(table):
    return [row[0] for row in db.execute_sql(f"SELECT params FROM {table}")]


def test_the_models_seal_exactly_the_secret_parameters():
    assert ModuleConfiguration.params.secret_keys == params.SECRET_PARAMS
    assert BillingConnector.params.secret_keys == connectors.SECRET_KEYS


def test_the_database_holds_the_shop_password_only_sealed(demo, shop, database_url):
    billing.add_connector(
        demo["instance"],
        "books",
        "osmp",
        {"url": "https://billing.test/osmp", "login": "cab", "password": "osmp-pw-9"},
    )
    stored = raw_params("module_configuration") + raw_params("billing_connector")
    text = "\n".join(stored)
    assert shop["password"] not in text and "osmp-pw-9" not in text
    assert "sealed:v1:" in text
    # Code reads the plain values.
    configuration = demo["instance"].active_configuration()
    assert configuration.params["password"] == shop["password"]
    assert BillingConnector.get().params["password"] == "osmp-pw-9"
    if database_url.startswith("postgresql"):
        # This run's schema only: a dump of the whole database would lock the
        # tables other test workers are dropping and creating beside it.
        schema = re.search(r"search_path(?:%3D|=)(\w+)", database_url)
        only = [f"--schema={schema.group(1)}"] if schema else []
        dump = subprocess.run(
            ["pg_dump", "--data-only", *only, database_url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "sealed:v1:" in dump  # the dump holds this run's rows
        assert shop["password"] not in dump and "osmp-pw-9" not in dump
    else:
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        data = open(database_url.removeprefix("sqlite:///"), "rb").read()
        assert shop["password"].encode() not in data


def test_a_wrong_key_is_a_clear_error_never_an_empty_password(make_app, demo):
    sealed = seal("shop-secret")
    other = make_app(
        SECRETS_KEY=Fernet.generate_key().decode(), SECRET_KEY="another-secret-key"
    )
    with in_app(other):
        with pytest.raises(SealError, match="SECRETS_KEY"):
            unseal(sealed)


def test_rotation_opens_with_the_old_key_and_seals_with_the_new(make_app):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with in_app(make_app(SECRETS_KEY=old)):
        sealed = seal("shop-secret")
    with in_app(make_app(SECRETS_KEY=f"{new},{old}")):
        assert unseal(sealed) == "shop-secret"
        resealed = seal(unseal(sealed))
    with in_app(make_app(SECRETS_KEY=new)):
        assert unseal(resealed) == "shop-secret"


def test_a_malformed_key_refuses_to_start(make_app):
    with pytest.raises(SealError, match="32 url-safe base64"):
        make_app(SECRETS_KEY="not-a-key")


def test_reseal_moves_every_secret_to_the_new_key(make_app, shop):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    first = make_app(SECRETS_KEY=old)
    with in_app(first):
        instance = configurations.add_instance("isp")
        configurations.add_configuration(
            instance, "main", ["shop_id=1", "login=1", f"password={shop['password']}"]
        )
    both = make_app(SECRETS_KEY=f"{new},{old}")
    resealed = both.test_cli_runner().invoke(args=["secrets", "reseal"])
    assert resealed.exit_code == 0 and "1 configurations" in resealed.output
    with in_app(make_app(SECRETS_KEY=new)):
        assert ModuleConfiguration.get().params["password"] == shop["password"]
    wrong = make_app(
        SECRETS_KEY=Fernet.generate_key().decode(), SECRET_KEY="another-secret-key"
    )
    refused = wrong.test_cli_runner().invoke(args=["secrets", "reseal"])
    assert (
        refused.exit_code == 2 and "Error: a secret in the database" in refused.output
    )


def test_setting_secrets_key_and_resealing_frees_secret_key_to_change(make_app, shop):
    """Sealed under the key SECRET_KEY gives, moved to SECRETS_KEY by a reseal."""
    with in_app(make_app()):  # no SECRETS_KEY: the derived key seals
        configurations.add_configuration(
            configurations.add_instance("isp"),
            "main",
            ["shop_id=1", "login=1", f"password={shop['password']}"],
        )
    key = Fernet.generate_key().decode()
    resealed = (
        make_app(SECRETS_KEY=key).test_cli_runner().invoke(args=["secrets", "reseal"])
    )
    assert resealed.exit_code == 0, resealed.output
    with in_app(make_app(SECRETS_KEY=key, SECRET_KEY="a-new-secret-key")):
        assert ModuleConfiguration.get().params["password"] == shop["password"]
