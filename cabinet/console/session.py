"""Log operators in and out of the console."""

from flask import redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from .. import accounts
from ..auth import LoginThrottle, OperatorUser, end_session, own_path, start_session
from ..models import Operator
from .blueprint import bp
from .forms import OperatorLoginForm


def _operator(login, password):
    """Return the active operator with this login and password, else None."""
    operator = Operator.get_or_none(Operator.login == login)
    return operator if accounts.password_matches(operator, password) else None


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the console's login form; log an operator in."""
    form = OperatorLoginForm()
    if not form.validate_on_submit():
        return render_template("console/login.html", form=form)
    name = form.login.data.strip()
    throttle = LoginThrottle("o", name)
    if throttle.blocked():
        form.login.errors.append(throttle.lockout_message())
        return render_template("console/login.html", form=form), 429
    operator = _operator(name, form.password.data)
    if operator is None:
        throttle.failed()
        form.password.errors.append(_l("Wrong login or password."))
        return render_template("console/login.html", form=form), 401
    throttle.succeeded()
    next_path = own_path(request.args.get("next"))
    start_session(OperatorUser(operator))
    return redirect(next_path or url_for("console.contracts"))


@bp.route("/logout", methods=["POST"])
def logout():
    """Log the operator out."""
    end_session()
    return redirect(url_for("console.login"))
