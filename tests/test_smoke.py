from datetime import UTC, datetime

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
