"""Read the sandbox settings from a config dict, the environment and defaults."""

import os

# The behaviours of SANDBOX_MODE: the sandbox's own demo rules, or Uniteller's
# virtual acquirer (v1.43 §3.3). docs/sandbox.md compares them.
MODES = ("demo", "spec")

# name -> (type, default); see the table in the package docstring.
SETTINGS = {
    "SANDBOX_DATABASE": (str, "instance/sandbox.sqlite3"),
    "SANDBOX_MODE": (str, "demo"),
    "SANDBOX_TIME_SCALE": (float, 1.0),
    "SANDBOX_RESULTS_INTERVAL": (float, 5.0),
    "SANDBOX_RESULTS_HOLD_SECONDS": (float, 100.0),
    "SANDBOX_DELAYED_SUCCESS_SECONDS": (float, 110.0),
    "SANDBOX_CAPTURE_DELAY": (float, 2.0),
    # An SBP refund is asynchronous (v1.43 §4.5.2.4): it settles this much later.
    "SANDBOX_SBP_REFUND_DELAY": (float, 1.0),
    "SANDBOX_STATUS_CHECK_DELAY": (float, 600.0),
    "SANDBOX_STATUS_CHECK_JITTER": (float, 300.0),
    "SANDBOX_TIMEZONE": (str, "Europe/Moscow"),
    "SANDBOX_SHOPS_FILE": (str, ""),
    "SANDBOX_PUBLIC_URL": (str, ""),
    "SANDBOX_BILLING_LOGIN": (str, "cabinet"),
    "SANDBOX_BILLING_PASSWORD": (str, ""),
    "SANDBOX_BILLING_WEBHOOK_SECRET": (str, ""),
}


def load_settings(config: dict | None = None) -> dict:
    """Return every setting typed: config dict first, then env var, then default."""
    config = config or {}
    settings = {}
    for name, (kind, default) in SETTINGS.items():
        raw = config.get(name, os.environ.get(name))
        settings[name] = default if raw is None or raw == "" else kind(raw)
    if settings["SANDBOX_MODE"] not in MODES:
        raise ValueError(
            f"SANDBOX_MODE must be one of {', '.join(MODES)}, "
            f"not {settings['SANDBOX_MODE']!r}"
        )
    return settings
