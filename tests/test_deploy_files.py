"""The shipped deployment files say what README's "Deploying" promises."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_the_env_file_is_read_as_systemd_reads_it(tmp_path):
    env_file = tmp_path / "cabinet.env"
    env_file.write_text(
        "# a comment\n"
        "RETENTION_CRON=30 3 * * *\n"
        'QUOTED="a b"\n'
        "SINGLE='c d'\n"
        "\n"
        "EMPTY=\n"
    )
    (tmp_path / "3").write_text("")  # what a glob of '*' or a bare 3 would find
    shown = subprocess.run(
        ["sh", "-c", f". {DEPLOY / 'load-env.sh'} && env"],
        env={"PATH": os.environ["PATH"], "CABINET_ENV": str(env_file)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for line in ("RETENTION_CRON=30 3 * * *", "QUOTED=a b", "SINGLE=c d", "EMPTY="):
        assert line in shown


def test_a_line_that_is_not_an_assignment_is_an_error(tmp_path):
    env_file = tmp_path / "cabinet.env"
    env_file.write_text("SECRET_KEY=x\nthis is not a setting\n")
    ran = subprocess.run(
        ["sh", "-c", f". {DEPLOY / 'load-env.sh'} && echo loaded"],
        env={"PATH": os.environ["PATH"], "CABINET_ENV": str(env_file)},
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 2 and "loaded" not in ran.stdout
    assert "Error:" in ran.stderr and "not KEY=VALUE" in ran.stderr


def test_gunicorn_believes_no_forwarded_header_itself():
    """TRUSTED_PROXIES alone decides (gunicorn's default trusts 127.0.0.1)."""
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert settings["forwarded_allow_ips"] == ""


def test_nginx_forwards_the_host_with_its_port():
    """On a port other than 443 the origin keeps its port, or forms are refused."""
    proxy = (DEPLOY / "nginx-cabinet-proxy.conf").read_text()
    assert "proxy_set_header X-Forwarded-Host $http_host;" in proxy


def test_the_nginx_site_keeps_no_error_line_with_a_query_string():
    site = (DEPLOY / "nginx-cabinet.conf").read_text()
    assert "error_log /var/log/nginx/cabinet.error.log crit;" in site


def test_nginx_sends_the_apps_csp_where_the_app_sends_none():
    """Static files and nginx's error pages get the same policy as the pages."""
    from cabinet import CONTENT_SECURITY_POLICY

    site = (DEPLOY / "nginx-cabinet.conf").read_text()
    assert f'"" "{CONTENT_SECURITY_POLICY}";' in site


def test_the_services_and_the_cli_create_files_others_cannot_read():
    for unit in (DEPLOY / "systemd").glob("*.service"):
        assert "\nUMask=0027\n" in unit.read_text(), unit.name
    assert "'umask 027 && " in (DEPLOY / "cabinet").read_text()


def test_the_readmes_backups_are_made_under_umask_077():
    readme = (DEPLOY.parent / "README.md").read_text()
    backups = readme[readme.index("### Backup and retention") :]
    umask = backups.index("\numask 077\n")
    assert umask < backups.index("pg_dump -Fc") < backups.index(".backup '")
    assert "install -d -m 0700 -o cabinet -g cabinet /srv/cabinet/instance" in readme


def test_the_cli_says_what_to_do_when_cabinet_cannot_run_the_virtualenv(tmp_path):
    fake = tmp_path / "runuser"  # as runuser answers for a per-user Python build
    fake.write_text(
        "#!/bin/sh\necho '.venv/bin/python: Permission denied' >&2\nexit 126\n"
    )
    fake.chmod(0o755)
    ran = subprocess.run(
        [str(DEPLOY / "cabinet"), "version"],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 2
    assert "Permission denied" in ran.stderr
    assert "/usr/bin/python3 -m venv .venv" in ran.stderr


def test_a_new_instance_folder_is_its_owners_only(tmp_path):
    import stat

    instance = tmp_path / "instance"
    old = os.umask(0o022)  # a usual umask: a folder would come out 0755
    try:
        ran = subprocess.run(
            [sys.executable, "-c", "import config; config._instance_secret_key()"],
            cwd=DEPLOY.parent,
            env={**os.environ, "INSTANCE_DIR": str(instance)},
            capture_output=True,
            text=True,
        )
    finally:
        os.umask(old)
    assert ran.returncode == 0, ran.stderr
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert stat.S_IMODE((instance / "secret_key").stat().st_mode) == 0o600
