"""cabinet: card payments through Uniteller for an ISP's subscribers."""

from flask import Flask, has_request_context, request, session

import config as settings

from . import logs
from .version import __version__ as __version__  # re-exported: cabinet.__version__


def create_app(config=None):
    """Create the web app; `config` overrides settings read from the environment."""
    app = Flask(__name__)
    app.config.update(settings.from_env())
    if config:
        app.config.update(config)
    logs.configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    register_security(app, config or {})
    register_input_guard(app)
    register_security_headers(app)
    register_extensions(app)
    register_blueprints(app)
    register_errors(app)
    register_commands(app)
    register_template_helpers(app)
    register_static_versions(app)
    register_event_handlers(app)
    return app


def register_security(app, overrides):
    """Set cookie and CSRF policy from PUBLIC_URL (unless given explicitly)."""
    secure = app.config["PUBLIC_URL"].startswith("https://")
    policy = {
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_SECURE": secure,
        "WTF_CSRF_TIME_LIMIT": None,  # a token lives as long as the session
    }
    app.config.update({k: v for k, v in policy.items() if k not in overrides})
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Behind nginx: the client's address (rate limits, audit) and https come
        # from the X-Forwarded-* headers the trusted proxies set, and only those.
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


# Scripts and styles only from our /static: no inline script, no framing. Forms
# may post elsewhere (the pay form goes to Uniteller's host).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


def register_security_headers(app):
    """Send CSP, anti-framing, nosniff, referrer, no-store and (behind https)
    HSTS headers."""
    https = app.config["PUBLIC_URL"].startswith("https://")

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # Our URLs carry order ids: other sites learn only our origin.
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        # Balances, orders, exports and forms with CSRF tokens: no browser or
        # proxy keeps a copy. Only our static files may be cached.
        if request.endpoint != "static":
            headers.setdefault("Cache-Control", "no-store")
        if https:
            headers.setdefault(
                "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
            )
        return response


# Endpoints taking a file, and the setting that bounds their bodies.
UPLOAD_LIMITS = {"console.contract_import_page": "CONTRACT_IMPORT_MAX_BYTES"}


def register_input_guard(app):
    """Refuse a body over MAX_CONTENT_LENGTH (413) before it is read, and any
    request carrying a NUL character (400) before it reaches SQL."""
    from flask import abort

    @app.before_request
    def _refuse_large_bodies():
        # Declared too large: refused unread. A body without a length is cut
        # off at the limit by werkzeug as it reads (also a 413).
        # An upload page has its own, larger limit (the contracts CSV).
        limit = app.config[UPLOAD_LIMITS.get(request.endpoint, "MAX_CONTENT_LENGTH")]
        request.max_content_length = limit
        if limit and (request.content_length or 0) > limit:
            abort(413, f"the request body is larger than {limit} bytes")

    # PostgreSQL cannot hold NUL in text and raises (a 500) wherever one is
    # compared or stored; no form, callback or API field has a use for it.
    @app.before_request
    def _refuse_nul():
        values = [request.path, *(k + v for k, v in request.args.items(multi=True))]
        if request.mimetype == "application/json":
            values.append(request.get_data(as_text=True).replace("\\u0000", "\x00"))
        else:
            values.extend(k + v for k, v in request.form.items(multi=True))
        if any("\x00" in value for value in values):
            abort(400, "NUL characters are not accepted")


def register_extensions(app):
    """Bind the database, Redis, login, CSRF, htmx and Babel to the app."""
    from . import auth, db, migrations, sealing
    from .extensions import babel, csrf, htmx, init_redis, login_manager

    sealing.init_app(app)
    db.init_app(app)
    migrations.init_app(app)
    init_redis(app)
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    auth.init_login(login_manager)

    def select_locale():
        # Jobs have no request: they speak the default language.
        lang = session.get("lang") if has_request_context() else None
        if lang in ("ru", "en"):
            return lang
        return app.config["DEFAULT_LOCALE"]

    babel.init_app(
        app, locale_selector=select_locale, default_timezone=app.config["TIMEZONE"]
    )


def register_blueprints(app):
    """Register the blueprints: auth, subscriber, gateway, console."""
    from . import api, auth, console, gateway, ops, subscriber
    from .extensions import csrf

    app.register_blueprint(auth.bp)
    app.register_blueprint(subscriber.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # a token, not a session, authenticates it
    app.register_blueprint(gateway.bp)
    csrf.exempt(gateway.bp)  # Uniteller signs its calls; it has no CSRF token
    app.register_blueprint(ops.bp)


def register_errors(app):
    """Map our errors and HTTP errors to pages (or plain text for machines)."""
    from flask import jsonify, render_template

    from .errors import CabinetError
    from .wording import readable

    def render_error(code, reason="", boilerplate=False):
        if request.path.startswith("/api/"):  # the ISP's scripts read JSON
            return jsonify({"error": reason or str(code)}), code
        if request.blueprint == "gateway":
            return reason or str(code), code, {"Content-Type": "text/plain"}
        # werkzeug's own descriptions are English boilerplate: the page's
        # translated title says it; a reason given to abort() is kept.
        reason = "" if boilerplate else readable(str(reason))
        return render_template("errors/error.html", code=code, reason=reason), code

    @app.errorhandler(CabinetError)
    def cabinet_error(exc):
        return render_error(exc.status_code, exc.message)

    def http_error(exc, code):
        reason = getattr(exc, "description", "")
        return render_error(code, reason, reason == type(exc).description)

    for code in (400, 403, 404, 405, 409, 413, 429, 500):
        app.register_error_handler(code, lambda exc, code=code: http_error(exc, code))


def register_static_versions(app):
    """Give every static URL its file's content hash (?v=): after an upgrade
    browsers fetch the new CSS and JS at once, however long they cached the old."""
    import functools
    import hashlib
    import os

    @functools.lru_cache(maxsize=256)
    def version_of(filename):
        try:
            with open(os.path.join(app.static_folder, filename), "rb") as file:
                return hashlib.sha256(file.read()).hexdigest()[:12]
        except OSError:  # no such file: the URL still changes with the release
            from .version import __version__

            return __version__

    @app.url_defaults
    def _static_version(endpoint, values):
        if endpoint == "static" and "v" not in values and "filename" in values:
            values["v"] = version_of(values["filename"])


def register_template_helpers(app):
    """Add the Jinja filters for money, times and statuses."""
    from datetime import UTC
    from zoneinfo import ZoneInfo

    from flask_babel import get_locale

    from . import i18n, labels, messages
    from .money import format_human
    from .webforms import error_ids

    zone = ZoneInfo(app.config["TIMEZONE"])
    i18n.install(app)
    labeller = i18n.labeller

    def when(value):
        """A stored (naive UTC) time as the ISP's local dd.mm.yyyy hh:mm."""
        if value is None:
            return ""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        # Digits only, the same in every locale: strftime, not Babel (a tenth
        # of the cost, on every row of every list).
        return value.astimezone(zone).strftime("%d.%m.%Y %H:%M")

    app.jinja_env.filters["money"] = format_human
    app.jinja_env.filters["message"] = messages.shown
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["status_label"] = labeller(labels.STATUS_LABELS)
    app.jinja_env.filters["autopay_mode"] = labeller(labels.AUTOPAY_MODE_LABELS)
    app.jinja_env.filters["autopay_state"] = labeller(labels.AUTOPAY_STATE_LABELS)
    app.jinja_env.filters["charge_status"] = labeller(labels.CHARGE_STATUS_LABELS)
    app.jinja_env.filters["contract_source"] = labeller(labels.CONTRACT_SOURCE_LABELS)
    app.jinja_env.filters["contract_status"] = labeller(labels.CONTRACT_STATUS_LABELS)
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["error_ids"] = error_ids  # a group's errors (a fieldset)


def register_event_handlers(app):
    """Connect the payments core's listeners; import the ISP's EVENT_HANDLERS."""
    from . import autopay, billing, fiscal  # noqa: F401  (connect their listeners)
    from .events import load_handlers

    load_handlers(app.config["EVENT_HANDLERS"])


def register_commands(app):
    """Add the flask CLI commands."""
    from . import cli

    cli.init_app(app)
