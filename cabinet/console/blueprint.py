"""The console's blueprint, on which every section registers its routes."""

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/console")
