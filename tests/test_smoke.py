from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import login


def test_login_and_index(client, demo):
    response = login(client)
    assert response.status_code == 302
    page = client.get("/")
    assert page.status_code == 200
    assert "1001" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    "zone, shown",
    [
        ("Europe/Moscow", "02.01.2026 00:30"),
        ("Asia/Vladivostok", "02.01.2026 07:30"),
        ("UTC", "01.01.2026 21:30"),
    ],
)
def test_times_are_shown_in_the_isps_timezone(make_app, zone, shown):
    when = make_app(TIMEZONE=zone).jinja_env.filters["when"]
    stored = datetime(2026, 1, 1, 21, 30, 59)  # naive UTC, as the database keeps it
    assert when(stored) == shown
    assert when(stored.replace(tzinfo=UTC)) == shown and when(None) == ""


def test_static_links_carry_their_files_content_hash(client, demo, app):
    import hashlib
    import re

    page = client.get("/login").get_data(as_text=True)
    links = dict(re.findall(r'(?:href|src)="/static/([^"?]+)\?v=([0-9a-f]+)"', page))
    assert "css/cabinet.css" in links and "js/htmx.min.js" in links
    for filename, version in links.items():
        content = (Path(app.static_folder) / filename).read_bytes()
        assert version == hashlib.sha256(content).hexdigest()[:12], filename
    assert 'href="/static/css/cabinet.css"' not in page  # no unversioned link left
    assert (
        client.get(f"/static/css/cabinet.css?v={links['css/cabinet.css']}").status_code
        == 200
    )
