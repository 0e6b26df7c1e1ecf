"""Settings of the cabinet: each one read from the environment variable of its name."""

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_DIR", BASE_DIR / "instance"))


def _bool(value):
    """Read a yes/no environment value."""
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _instance_secret_key():
    """Return a random key kept in the instance folder, made on first use."""
    # One box needs no set-up; several hosts must share SECRET_KEY (README).
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        # Owner-only, like the key and the SQLite files it will hold.
        INSTANCE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Written whole under a name of its own, then linked into place: two
        # processes starting at once keep the first key, and neither reads a
        # file half written.
        draft = path.with_name(f".secret_key.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: its key stands
        finally:
            draft.unlink()
    return path.read_text().strip()


def from_env(environ=None):
    """Return the settings as a dict, taken from the environment with defaults."""
    env = os.environ if environ is None else environ
    testing = _bool(env.get("TESTING", "0"))
    return {
        "SECRET_KEY": env.get("SECRET_KEY") or _instance_secret_key(),
        # Fernet keys of the secrets kept in the database (cabinet/sealing.py);
        # empty: one derived from SECRET_KEY.
        "SECRETS_KEY": env.get("SECRETS_KEY", ""),
        "TESTING": testing,
        "DATABASE_URL": env.get(
            "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'cabinet.sqlite3'}"
        ),
        "REDIS_URL": env.get("REDIS_URL", ""),
        "REDIS_EMBEDDED_PATH": env.get(
            "REDIS_EMBEDDED_PATH", str(INSTANCE_DIR / "redis.db")
        ),
        "PUBLIC_URL": env.get("PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
        "TIMEZONE": env.get("TIMEZONE", "Europe/Moscow"),
        "DEFAULT_LOCALE": env.get("DEFAULT_LOCALE", "ru"),
        "PAGE_SIZE": int(env.get("PAGE_SIZE", "20")),
        "LOGIN_ATTEMPTS": int(env.get("LOGIN_ATTEMPTS", "10")),
        "LOGIN_DELAY_SECONDS": int(env.get("LOGIN_DELAY_SECONDS", "30")),
        "LOGIN_LOCKOUT_SECONDS": int(env.get("LOGIN_LOCKOUT_SECONDS", "900")),
        "LOGIN_ACCOUNT_ATTEMPTS": int(env.get("LOGIN_ACCOUNT_ATTEMPTS", "100")),
        "SESSION_IDLE_MINUTES": int(env.get("SESSION_IDLE_MINUTES", "30")),
        # How long a sign-in link from the ISP's site (POST /api/sessions) lives.
        "HANDOFF_SECONDS": int(env.get("HANDOFF_SECONDS", "60")),
        # Sign-in links one address may open per minute (GET /handoff/…).
        "HANDOFF_RATE_LIMIT": int(env.get("HANDOFF_RATE_LIMIT", "30")),
        # /quick-pay: orders one address, and one contract number, may start
        # per minute; and whether the form shows the contract's masked name.
        "QUICK_PAY_ADDRESS_LIMIT": int(env.get("QUICK_PAY_ADDRESS_LIMIT", "10")),
        "QUICK_PAY_CONTRACT_LIMIT": int(env.get("QUICK_PAY_CONTRACT_LIMIT", "5")),
        "QUICK_PAY_SHOW_NAME": _bool(env.get("QUICK_PAY_SHOW_NAME", "0")),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "LOG_FORMAT": env.get("LOG_FORMAT", "text"),
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", "0")),
        "METRICS_TOKEN": env.get("METRICS_TOKEN", ""),
        "METRICS_ALLOW": env.get("METRICS_ALLOW", "127.0.0.1/32"),
        "CRON_HEARTBEAT_MAX_AGE": int(env.get("CRON_HEARTBEAT_MAX_AGE", "180")),
        "EVENT_RETENTION_DAYS": int(env.get("EVENT_RETENTION_DAYS", "0")),
        "RETENTION_CRON": env.get("RETENTION_CRON", "30 3 * * *"),
        "STATUS_CHECK_CRON": env.get("STATUS_CHECK_CRON", "*/5 * * * *"),
        "STATUS_CHECK_GRACE": int(env.get("STATUS_CHECK_GRACE", "120")),
        "STATUS_CHECK_EXPIRE_MARGIN": int(
            env.get("STATUS_CHECK_EXPIRE_MARGIN", "3600")
        ),
        # The timezone Uniteller reads a /results/ period in (its clock's).
        "UNITELLER_TIMEZONE": env.get("UNITELLER_TIMEZONE", "Europe/Moscow"),
        "RESULTS_MIN_INTERVAL": float(env.get("RESULTS_MIN_INTERVAL", "5")),
        "RETURN_CHECK_DELAY": int(env.get("RETURN_CHECK_DELAY", "10")),
        "AUTOPAY_CRON": env.get("AUTOPAY_CRON", "0 6 * * *"),
        "AUTOPAY_CATCH_UP_DAYS": int(env.get("AUTOPAY_CATCH_UP_DAYS", "3")),
        "AUTOPAY_REMIND_DAYS": int(env.get("AUTOPAY_REMIND_DAYS", "0")),
        "RECURRENT_CONCURRENCY": int(env.get("RECURRENT_CONCURRENCY", "5")),
        "RESOLVE_DELAY": int(env.get("RESOLVE_DELAY", "60")),
        # Minutes after its money moved before a receipt still not fiscalized is
        # put on the operators' "paid, no receipt" list.
        "RECEIPT_MISSING_MINUTES": int(env.get("RECEIPT_MISSING_MINUTES", "30")),
        "EVENT_HANDLERS": env.get("EVENT_HANDLERS", ""),
        "SMTP_HOST": env.get("SMTP_HOST", ""),
        "SMTP_PORT": int(env.get("SMTP_PORT", "25")),
        "SMTP_USER": env.get("SMTP_USER", ""),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": _bool(env.get("SMTP_STARTTLS", "0")),
        "MAIL_FROM": env.get("MAIL_FROM", "cabinet@localhost"),
        # Gateway origins beyond Uniteller's own (the sandbox, a merchant domain).
        "UNITELLER_EXTRA_GATEWAYS": env.get("UNITELLER_EXTRA_GATEWAYS", ""),
        # Uniteller's status requests one address may make per minute.
        "STATUS_REQUEST_LIMIT": int(env.get("STATUS_REQUEST_LIMIT", "120")),
        # A contract's unpaid orders whose forms still live, at most.
        "OPEN_ORDERS_MAX": int(env.get("OPEN_ORDERS_MAX", "5")),
        # Orders a contract may start per minute on /pay.
        "PAY_RATE_LIMIT": int(env.get("PAY_RATE_LIMIT", "10")),
        # The longest period one reconciliation compares.
        "RECONCILE_MAX_DAYS": int(env.get("RECONCILE_MAX_DAYS", "31")),
        # Bytes of a request body, refused with 413 before it is read.
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", str(1024 * 1024))),
        # A contracts CSV uploaded in the console, bytes (beyond MAX_CONTENT_LENGTH).
        "CONTRACT_IMPORT_MAX_BYTES": int(
            env.get("CONTRACT_IMPORT_MAX_BYTES", str(50 * 1024 * 1024))
        ),
        # Rows of one contracts CSV (the CLI and the console), at most.
        "CONTRACT_IMPORT_MAX_ROWS": int(env.get("CONTRACT_IMPORT_MAX_ROWS", "1000000")),
        # Temporary failures of a billing delivery are retried this long.
        "BILLING_RETRY_DAYS": float(env.get("BILLING_RETRY_DAYS", "3")),
        "BILLING_SWEEP_CRON": env.get("BILLING_SWEEP_CRON", "* * * * *"),
    }
