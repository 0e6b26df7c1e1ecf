"""Log subscribers in and out (revocable sessions); pick the language."""

import time
from urllib.parse import urlparse

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from . import accounts
from .extensions import get_redis, htmx
from .models import Contract, Operator
from .prepared import Prepared

bp = Blueprint("auth", __name__)
# Every page a subscriber opens loads the contract: its SQL is built once.
_CONTRACT_BY_ID = Prepared(
    lambda slot: (
        Contract.select()
        .where(
            Contract.id == slot("id"), Contract.session_generation == slot("generation")
        )
        .limit(1)
    )
)


class ContractUser:
    """The logged-in subscriber, as Flask-Login sees it."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_contract = True
    is_operator = False

    def __init__(self, contract):
        self.contract = self.account = contract

    def get_id(self):
        # The generation in the id: raising it (logout, a new password) makes
        # every session that holds the old one load nobody.
        return f"c:{self.contract.id}:{self.contract.session_generation}"


class OperatorUser:
    """A logged-in member of the ISP's staff."""

    is_authenticated = True
    is_anonymous = False
    is_contract = False
    is_operator = True

    def __init__(self, operator):
        self.operator = self.account = operator
        self.is_active = operator.is_active

    def get_id(self):
        return f"o:{self.operator.id}:{self.operator.session_generation}"


def _load_user(user_id):
    """Return the user a session's id names, if that session is still theirs."""
    kind, pk, generation = (user_id.split(":") + ["", ""])[:3]
    if not (pk.isdigit() and generation.isdigit()):
        return None
    if kind == "c":
        contract = _CONTRACT_BY_ID.first(id=int(pk), generation=int(generation))
        return ContractUser(contract) if contract else None
    if kind == "o":
        operator = Operator.get_or_none(
            Operator.id == int(pk),
            Operator.session_generation == int(generation),
            Operator.is_active == True,  # noqa: E712
        )
        return OperatorUser(operator) if operator else None
    return None


def _recently_seen():
    """True unless the session was idle longer than SESSION_IDLE_MINUTES; touch it."""
    idle = current_app.config["SESSION_IDLE_MINUTES"] * 60
    now = int(time.time())
    seen = session.get("seen")
    known = isinstance(seen, int)
    if idle and not (known and now - seen <= idle):
        return False
    # Stamped at most once a minute: not every request need send a new cookie.
    if not known or now - seen >= 60:
        session["seen"] = now
    return True


def init_login(login_manager):
    """Teach Flask-Login to load our two kinds of user."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please log in to continue.")

    @login_manager.user_loader
    def load_user(user_id):
        user = _load_user(user_id)
        if user is None or not _recently_seen():
            _fresh_session()  # revoked or idle: forget it, keep the language
            return None
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        # Staff and subscribers log in on different pages.
        view = "console.login" if request.blueprint == "console" else "auth.login"
        target = url_for(view, next=own_path(request.full_path))
        if htmx:
            # An expired login must not land inside a table cell.
            return "", 401, {"HX-Redirect": target}
        flash(login_manager.login_message, "info")
        return redirect(target)


class LoginForm(FlaskForm):
    """Contract number and password."""

    number = StringField(
        _l("Contract number"), validators=[DataRequired(), Length(max=64)]
    )
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(max=200)]
    )


def own_path(target):
    """Return target if it is a path on this site, else None (no open redirects)."""
    if not target:
        return None
    parsed = urlparse(target)
    if (
        parsed.scheme
        or parsed.netloc
        or not target.startswith("/")
        or target.startswith("//")
    ):
        return None
    if "\\" in target:
        return None
    return target.rstrip("?") or None


class LoginThrottle:
    """Counts failed logins per login name and per address in Redis."""

    def __init__(self, kind, name):
        # kind "n" is a contract number, "o" an operator's login; the address
        # counter is shared by both.
        self.keys = [
            f"cabinet:login-fail:{kind}:{name}",
            f"cabinet:login-fail:ip:{request.remote_addr}",
        ]
        self.limit = current_app.config["LOGIN_ATTEMPTS"]
        self.window = current_app.config["LOGIN_LOCKOUT_SECONDS"]

    def blocked(self):
        """True while this name or this address is locked out."""
        counts = get_redis().mget(self.keys)
        # The address limit is wider: many subscribers may share one NAT.
        return (
            int(counts[0] or 0) >= self.limit or int(counts[1] or 0) >= self.limit * 5
        )

    def lockout_message(self):
        """Say how long a locked-out person waits."""
        minutes = max(1, self.window // 60)
        return _l(
            "Too many failed attempts. Try again in %(minutes)d minutes.",
            minutes=minutes,
        )

    def failed(self):
        """Count one failed attempt."""
        pipe = get_redis().pipeline()
        for key in self.keys:
            pipe.incr(key)
            pipe.expire(key, self.window)
        pipe.execute()

    def succeeded(self):
        """Forget the name's failures."""
        get_redis().delete(self.keys[0])


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form; log a subscriber in by contract number and password."""
    form = LoginForm()
    if form.validate_on_submit():
        number = form.number.data.strip()
        throttle = LoginThrottle("n", number)
        if throttle.blocked():
            form.number.errors.append(throttle.lockout_message())
            return render_template("auth/login.html", form=form), 429
        contract = Contract.by_number(number)
        if accounts.password_matches(contract, form.password.data):
            throttle.succeeded()
            next_path = own_path(request.args.get("next"))
            start_session(ContractUser(contract))
            return redirect(next_path or url_for("subscriber.index"))
        throttle.failed()
        form.password.errors.append(_l("Wrong contract number or password."))
        return render_template("auth/login.html", form=form), 401
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    """Log out and forget the session."""
    end_session()
    return redirect(url_for("auth.login"))


def end_session():
    """Log whoever it is out, ending all their sessions; keep the language."""
    if current_user.is_authenticated:
        accounts.end_sessions(current_user.account)
    logout_user()
    _fresh_session()


def start_session(user):
    """Log a user in on a new session (no fixation), keeping the language."""
    _fresh_session()
    login_user(user)
    session["seen"] = int(time.time())


def _fresh_session():
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


@bp.route("/lang/<code>", methods=["POST"])
def set_language(code):
    """Switch the interface language (ru or en) for this session."""
    if code not in ("ru", "en"):
        return render_template(
            "errors/error.html", code=404, reason="unknown language"
        ), 404
    session["lang"] = code
    return redirect(own_path(request.form.get("next")) or url_for("subscriber.index"))


def current_contract():
    """Return the logged-in subscriber's contract (the view must require a login)."""
    if current_user.is_authenticated and getattr(current_user, "is_contract", False):
        return current_user.contract
    return None
