from tests.conftest import login


def test_login_and_index(client, demo):
    response = login(client)
    assert response.status_code == 302
    page = client.get("/")
    assert page.status_code == 200
    assert "1001" in page.get_data(as_text=True)
