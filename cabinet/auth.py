"""Log subscribers in and out; revocable sessions, the login throttle; the language."""

import hashlib
import ipaddress
import math
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
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from . import accounts, handoff
from .extensions import get_redis, htmx
from .models import Contract, Operator
from .pacing import WindowLimit
from .prepared import Prepared
from .webforms import Form

bp = Blueprint("auth", __name__)
# Every page a subscriber opens loads the contract: its SQL is built once.
_CONTRACT_BY_ID = Prepared(
    lambda slot: (
        Contract.select()
        .where(
            Contract.id == slot("id"),
            Contract.session_generation == slot("generation"),
            Contract.status == "active",  # a blocked contract's sessions end
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


class LoginForm(Form):
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


# One attempt, atomically: refuse it while a wait runs, else count it and, past
# a threshold, start the wait the next attempt must sit out (so concurrent
# guesses cannot slip past the count). KEYS: the pair's failures and wait, the
# address's failures and wait, the account's failures from every address.
# ARGV: pair threshold, address threshold, account threshold, first wait (ms),
# longest wait (ms), how long failures are remembered (s).
_ATTEMPT = """
local crowded = tonumber(redis.call('GET', KEYS[5]) or '0') >= tonumber(ARGV[3])
local flag = crowded and 1 or 0
local wait = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[4]))
if wait > 0 then return {wait, flag} end
local function count(failures, waiting, threshold)
  local n = redis.call('INCR', failures)
  redis.call('EXPIRE', failures, ARGV[6])
  local over = n - threshold
  if over >= 0 then
    local ms = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ math.min(over, 40))
    redis.call('SET', waiting, '1', 'PX', math.max(1, math.floor(ms)))
  end
end
count(KEYS[1], KEYS[2], crowded and 1 or tonumber(ARGV[1]))
count(KEYS[3], KEYS[4], tonumber(ARGV[2]))
return {0, flag}
"""
# A success forgets the pair and takes its attempt back from the address (many
# subscribers behind one NAT log in all day). ARGV: the address threshold.
_SUCCESS = """
redis.call('DEL', KEYS[1], KEYS[2])
local n = redis.call('DECR', KEYS[3])
if n <= 0 then redis.call('DEL', KEYS[3]) end
if n < tonumber(ARGV[1]) then redis.call('DEL', KEYS[4]) end
"""
# Failures are remembered for a day after the last one (or the longest wait).
FAILURES_KEPT_SECONDS = 86400


def client_address(remote_addr):
    """Return the address a throttle counts: an IPv4 address or an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return remote_addr or "-"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        # One subscriber line gets a whole /64: its addresses are one address.
        return f"{ipaddress.ip_network(f'{ip}/64', strict=False).network_address}/64"
    return str(ip)


class LoginThrottle:
    """Growing waits after failed logins: per (account, address), and per address.

    Failures for an account from one address slow only that address, so its
    owner from another address still gets in. Past LOGIN_ACCOUNT_ATTEMPTS
    failures of the account from everywhere, each address waits after its first
    failure: distributed guessing slows, the owner from a clean address does not.
    """

    def __init__(self, kind, name):
        # kind "n" is a contract number, "o" an operator's login; the address
        # counter is shared by both. Names are hashed: keys of fixed shape.
        account = hashlib.sha256(name.encode()).hexdigest()[:32]
        address = client_address(request.remote_addr)
        pair = f"{kind}:{account}:{address}"
        self.keys = [
            f"cabinet:login-fail:{pair}",
            f"cabinet:login-wait:{pair}",
            f"cabinet:login-fail:ip:{address}",
            f"cabinet:login-wait:ip:{address}",
            f"cabinet:login-fail:{kind}:{account}",
        ]
        config = current_app.config
        self.limit = config["LOGIN_ATTEMPTS"]
        # The address limit is wider: many subscribers may share one NAT.
        self.address_limit = self.limit * 5
        self.account_limit = config["LOGIN_ACCOUNT_ATTEMPTS"]
        self.first_wait = config["LOGIN_DELAY_SECONDS"]
        self.longest_wait = config["LOGIN_LOCKOUT_SECONDS"]
        self.wait = 0
        self.crowded = False

    def blocked(self):
        """Count this attempt; True (nothing counted) while this address must wait."""
        wait_ms, crowded = get_redis().register_script(_ATTEMPT)(
            keys=self.keys,
            args=[
                self.limit,
                self.address_limit,
                self.account_limit,
                self.first_wait * 1000,
                self.longest_wait * 1000,
                max(FAILURES_KEPT_SECONDS, self.longest_wait),
            ],
        )
        self.wait = math.ceil(int(wait_ms) / 1000)
        self.crowded = bool(crowded)
        return self.wait > 0

    def lockout_message(self):
        """Say why the attempt waits, and for how long."""
        if self.crowded:
            why = _l(
                "Too many failed attempts for this account from different "
                "addresses: each address now waits after a failure."
            )
        else:
            why = _l("Too many failed attempts.")
        if self.wait >= 60:
            when = _l(
                "Try again in %(minutes)d minutes.", minutes=math.ceil(self.wait / 60)
            )
        else:
            when = _l("Try again in %(seconds)d seconds.", seconds=self.wait)
        return f"{why} {when}"

    def failed(self):
        """Count a failed attempt against the account from every address."""
        key = self.keys[4]
        pipe = get_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, max(FAILURES_KEPT_SECONDS, self.longest_wait))
        pipe.execute()

    def succeeded(self):
        """Forget this address's failures for the account."""
        get_redis().register_script(_SUCCESS)(
            keys=self.keys[:4], args=[self.address_limit]
        )


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


# The sign-in link is a credential in its URL: no page it leads to tells another
# site where the browser came from, and no cache keeps it.
HANDOFF_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


@bp.route("/handoff/<token>")
def handoff_sign_in(token):
    """Sign a subscriber in by a single-use link from the ISP's site, once."""
    address = client_address(request.remote_addr)
    opens = WindowLimit(
        get_redis(),
        f"cabinet:handoff:{address}",
        current_app.config["HANDOFF_RATE_LIMIT"],
    )
    if not opens.hit():
        wait = opens.retry_after()
        page = render_template("auth/handoff-refused.html", why="busy", wait=wait)
        return page, 429, {**HANDOFF_HEADERS, "Retry-After": str(wait)}
    try:
        contract, next_path = handoff.use(token, request.remote_addr)
    except handoff.HandoffRefused as exc:
        page = render_template("auth/handoff-refused.html", why=exc.message)
        return page, exc.status_code, HANDOFF_HEADERS
    start_session(ContractUser(contract))
    target = own_path(next_path) or url_for("subscriber.index")
    return redirect(target), 302, HANDOFF_HEADERS


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
