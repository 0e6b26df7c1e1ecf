"""The OpenAPI file describes every /api route, with the scope its view needs."""

import json
import re
from pathlib import Path

import cabinet.api

SPEC = json.loads(
    (Path(cabinet.api.__file__).parent / "openapi.json").read_text(encoding="utf-8")
)
METHODS = {"get", "put", "post", "delete", "patch"}


def routes(app):
    """{(OpenAPI path, method): the scope the view declares, or None}."""
    found = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        scope = getattr(app.view_functions[rule.endpoint], "scope", None)
        for method in rule.methods & {m.upper() for m in METHODS}:
            found[(path, method.lower())] = scope
    return found


def test_every_route_is_described_with_its_scope_and_nothing_else(app):
    served = routes(app)
    described = {
        (path, method): operation.get("x-scope")
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }
    assert set(served) - set(described) == set(), "routes missing from openapi.json"
    assert set(described) - set(served) == set(), "openapi.json names no such route"
    assert described == served, "x-scope differs from the view's requires()"
    for (path, method), scope in described.items():
        operation = SPEC["paths"][path][method]
        assert operation["responses"], (path, method)
        # A route without a scope takes no token; one with a scope says 401/403.
        if scope is None:
            assert operation.get("security") == [], (path, method)
        else:
            assert {"401", "403"} <= set(operation["responses"]), (path, method)
    assert list(SPEC["paths"]) == sorted(SPEC["paths"]), "keep the paths sorted"


def test_every_reference_resolves():
    text = json.dumps(SPEC)
    for reference in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        node = SPEC
        for part in reference.split("/"):
            node = node[part]


def test_the_file_is_served_without_a_token(client):
    answer = client.get("/api/openapi.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.json["openapi"].startswith("3.1") and answer.json == SPEC
