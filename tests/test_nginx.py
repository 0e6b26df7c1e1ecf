"""The shipped nginx site in front of gunicorn from the shipped config, over TLS.

nginx (deploy/nginx-cabinet.conf + nginx-cabinet-proxy.conf) listens with a
self-signed certificate on a port that is not 443, gunicorn runs
deploy/gunicorn.conf.py with TRUSTED_PROXIES=1, and the Uniteller sandbox (in a
thread) calls back through nginx over https, trusting the test's certificate by
REQUESTS_CA_BUNDLE as a staging set-up does (README, the sandbox). A subscriber
logs in with CSRF checks on (the Referer must match the host with its port) and
pays by card; the payment is credited, and every answer carries each security
header exactly once. Skipped when nginx is not installed (.ci/run installs it).
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from cabinet import CONTENT_SECURITY_POLICY, create_app
from cabinet.models import Contract
from tests.helpers import (
    CsrfSession,
    add_shop_instance,
    free_port,
    in_app,
    pay_by_card,
    redis_url,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NGINX = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
SHOP = {"shop_id": "00000021", "login": "2121", "password": "nginx-shop-password"}
SECURITY_HEADERS = (
    "Strict-Transport-Security",
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
)

pytestmark = [
    pytest.mark.serial,
    pytest.mark.sqlite_only,  # its own SQLite file: not about the database
    pytest.mark.skipif(
        NGINX is None,
        reason="nginx is not installed (apt-get install -y nginx; .ci/run does it)",
    ),
]


def render(text, substitutions):
    """Replace each (old, new) in text; fail if the shipped file lacks one."""
    for old, new in substitutions:
        assert old in text, f"the shipped nginx file no longer has {old!r}"
        text = text.replace(old, new)
    return text


def self_signed_certificate(directory):
    """A certificate for IP 127.0.0.1 and its key; their paths."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def nginx_config(directory, tls_port, http_port, upstream_port, cert, key):
    """The deploy/ site as README step 9 installs it, on test ports and paths."""
    logs, www = directory / "logs", directory / "www"
    logs.mkdir()
    www.mkdir()
    proxy = directory / "cabinet-proxy.conf"
    shutil.copy(DEPLOY / "nginx-cabinet-proxy.conf", proxy)
    site = render(
        (DEPLOY / "nginx-cabinet.conf").read_text(),
        [
            ("/etc/letsencrypt/live/pay.example.net/fullchain.pem", str(cert)),
            ("/etc/letsencrypt/live/pay.example.net/privkey.pem", str(key)),
            ("server_name pay.example.net;", "server_name 127.0.0.1;"),
            ("listen [::]:80;", ""),
            ("listen [::]:443 ssl http2;", ""),
            ("listen 80;", f"listen 127.0.0.1:{http_port};"),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;"),
            ("root /var/www/html;", f"root {www};"),
            ("/srv/cabinet/cabinet/static/", f"{ROOT / 'cabinet' / 'static'}/"),
            ("/etc/nginx/cabinet-proxy.conf", str(proxy)),
            ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};"),
            ("/var/log/nginx/", f"{logs}/"),
        ],
    )
    (directory / "cabinet-site.conf").write_text(site)
    mime = Path("/etc/nginx/mime.types")
    temp = directory / "temp"
    temp.mkdir()
    # As root the workers would run as nobody, who may not read the checkout.
    user = "user root;" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
error_log {logs}/error.log;
events {{}}
http {{
    {f"include {mime};" if mime.exists() else ""}
    default_type application/octet-stream;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {directory / "cabinet-site.conf"};
}}
"""
    )
    return directory / "nginx.conf"


def wait_until(predicate, timeout, what):
    """Poll until predicate() is true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def answers(url, processes):
    """True once url answers 200; fail if one of the processes died."""
    for name, process in processes.items():
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}")
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def once_each(response):
    """{header: [values]} of the security headers as they came on the wire."""
    return {name: response.raw.headers.getlist(name) for name in SECURITY_HEADERS}


def test_login_and_payment_through_nginx_on_a_non_443_port(
    tmp_path, redis, monkeypatch
):
    from cabinet.uniteller.sandbox import add_shop
    from cabinet.uniteller.sandbox import create_app as create_sandbox
    from cabinet.uniteller.sandbox.testing import serve_in_thread

    tls_port, http_port, app_port = free_port(), free_port(), free_port()
    public = f"https://127.0.0.1:{tls_port}"
    cert, key = self_signed_certificate(tmp_path)
    conf = nginx_config(tmp_path, tls_port, http_port, app_port, cert, key)
    # This process (the sandbox's callbacks, the subscriber) trusts the test CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setattr(CsrfSession, "cabinet_urls", (public,))
    monkeypatch.setattr(requests, "Session", CsrfSession)

    database = f"sqlite:///{tmp_path / 'cabinet.sqlite3'}"
    sandbox_app = create_sandbox(
        {
            "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
            "SANDBOX_TIME_SCALE": 0.001,
            "SANDBOX_RESULTS_INTERVAL": 0.05,
            "SANDBOX_CAPTURE_DELAY": 0,
            "SANDBOX_STATUS_CHECK_DELAY": 0,
        }
    )
    sandbox = serve_in_thread(sandbox_app)
    add_shop(
        sandbox_app,
        SHOP["shop_id"],
        password=SHOP["password"],
        login=SHOP["login"],
        notify_url=f"{public}/uniteller/isp/notify",
        status_url=f"{public}/uniteller/isp/status",
        callback_fields="BillNumber ApprovalCode Total",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
    env.update(
        {
            "DATABASE_URL": database,
            "REDIS_URL": redis_url(redis),
            "SECRET_KEY": "nginx-test-secret-key",
            "INSTANCE_DIR": str(tmp_path),
            "PUBLIC_URL": public,
            "TRUSTED_PROXIES": "1",
            "UNITELLER_EXTRA_GATEWAYS": sandbox.url,
            "STATUS_CHECK_GRACE": "0",
            "RESULTS_MIN_INTERVAL": "0.05",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    upgrade = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "cabinet", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    app = create_app(
        {
            "DATABASE_URL": database,
            "REDIS_URL": redis_url(redis),
            "SECRET_KEY": "nginx-test-secret-key",
            "PUBLIC_URL": public,
            "UNITELLER_EXTRA_GATEWAYS": sandbox.url,
        }
    )
    with in_app(app):
        add_shop_instance(SHOP, sandbox.url, name="ISP", contract_name="Subscriber")

    processes, logs = {}, []
    try:
        web_log = open(tmp_path / "gunicorn.log", "wb")
        logs.append(web_log)
        processes["gunicorn"] = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"]
            + ["--bind", f"127.0.0.1:{app_port}", "--workers", "1"],
            cwd=ROOT,
            env=env,
            stdout=web_log,
            stderr=subprocess.STDOUT,
        )
        nginx_log = open(tmp_path / "nginx.log", "wb")
        logs.append(nginx_log)
        processes["nginx"] = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(tmp_path)]
            + ["-e", str(tmp_path / "logs" / "error.log")]
            + ["-g", f"daemon off; pid {tmp_path / 'nginx.pid'};"],
            stdout=nginx_log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: answers(f"{public}/healthz", processes), 30, "nginx")

        site = SimpleNamespace(
            url=public, sandbox_url=sandbox.url, contract_number="1001"
        )
        order_id, location, returned = pay_by_card(site)
        assert location.startswith(f"{public}/pay/return/ok")
        assert returned.status_code == 200
        assert "/login" not in returned.url  # the login's POST passed the CSRF check
        assert sandbox_app.extensions["sandbox"].wait_idle(20)
        with in_app(app):
            contract = Contract.by_number("1001")
            assert contract.balance == 50000
            assert [t.status for t in contract.transactions] == ["paid"]
        # The shop's password only sealed, in files only their owner reads.
        files = sorted(tmp_path.glob("cabinet.sqlite3*"))
        assert files
        for path in files:
            assert SHOP["password"].encode() not in path.read_bytes(), path.name
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name
        access = (tmp_path / "logs" / "cabinet.access.log").read_text()
        assert '"POST /uniteller/isp/notify HTTP/1.1" 200' in access  # over TLS
        assert order_id not in access  # no query string on disk

        # Each security header once: the app's on a page (its no-store too),
        # nginx's on a static file and on nginx's own error page.
        page = requests.get(f"{public}/login", timeout=10)
        headers = once_each(page)
        assert all(len(values) == 1 for values in headers.values()), headers
        assert headers["Referrer-Policy"] == ["strict-origin-when-cross-origin"]
        assert headers["Content-Security-Policy"] == [CONTENT_SECURITY_POLICY]
        handoff = requests.get(f"{public}/handoff/no-such-token", timeout=10)
        assert handoff.status_code == 410
        assert once_each(handoff)["Referrer-Policy"] == ["no-referrer"]
        static = requests.get(f"{public}/static/css/cabinet.css", timeout=10)
        too_large = requests.post(f"{public}/login", data="x" * 2_000_000, timeout=10)
        assert (static.status_code, too_large.status_code) == (200, 413)
        for answer in (static, too_large):
            assert once_each(answer) == {
                "Strict-Transport-Security": ["max-age=63072000; includeSubDomains"],
                "Content-Security-Policy": [CONTENT_SECURITY_POLICY],
                "X-Frame-Options": ["DENY"],
                "X-Content-Type-Options": ["nosniff"],
                "Referrer-Policy": ["strict-origin-when-cross-origin"],
            }, answer.url
        # A versioned static URL is kept a year (a new file has a new URL).
        versioned = re.search(
            r'href="(/static/css/cabinet\.css\?v=[0-9a-f]+)"', page.text
        )
        kept = requests.get(f"{public}{versioned.group(1)}", timeout=10)
        assert kept.headers["Cache-Control"] == "max-age=31536000"
        assert static.headers["Cache-Control"] == "max-age=3600"
        redirect = requests.get(
            f"http://127.0.0.1:{http_port}/login", allow_redirects=False, timeout=10
        )
        assert redirect.status_code == 301
    except BaseException:
        for name in ("gunicorn.log", "nginx.log", "logs/error.log"):
            path = tmp_path / name
            if path.exists():
                print(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
        sandbox.shutdown()
        sandbox_app.extensions["sandbox"].close()
