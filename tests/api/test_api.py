import pytest

from tests.conftest import login_as


def _bearer(services, email="a@example.org", name="Ann", admin=False):  # type: ignore[no-untyped-def]
    user = services.identity.users.create(email, name, is_admin=admin)
    _, token = services.identity.tokens.create(user.id, "test")
    return user, {"Authorization": f"Bearer {token}"}


def test_me_with_a_personal_token(make_shell):
    services, client = make_shell()
    user, auth = _bearer(services)
    answer = client.get("/api/v1/me", headers=auth)
    assert answer.status_code == 200
    body = answer.json()
    assert {k: body[k] for k in ("id", "email", "name", "is_admin")} == {
        "id": user.id, "email": "a@example.org", "name": "Ann", "is_admin": False}


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer " + "A" * 43, "Bearer ",
                                    "Bearer " + "x" * 5000])
def test_bad_tokens_get_401_json(make_shell, header):
    _, client = make_shell()
    answer = client.get("/api/v1/me", headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "not_authenticated"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_revoked_token_stops_working_at_once(make_shell):
    services, client = make_shell()
    user, auth = _bearer(services)
    tokens = client.get("/api/v1/me/tokens", headers=auth).json()
    assert [t["label"] for t in tokens] == ["test"]
    assert client.delete(f"/api/v1/me/tokens/{tokens[0]['id']}", headers=auth).status_code == 204
    assert client.get("/api/v1/me", headers=auth).status_code == 401


def test_creating_a_token_returns_the_secret_once(make_shell):
    services, client = make_shell()
    _, auth = _bearer(services)
    made = client.post("/api/v1/me/tokens", json={"label": "ci"}, headers=auth)
    assert made.status_code == 201
    secret = made.json()["token"]
    assert len(secret) == 43
    listed = client.get("/api/v1/me/tokens", headers=auth).json()
    assert all("token" not in t for t in listed)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}
                      ).status_code == 200


def test_admin_routes_are_forbidden_to_users(make_shell):
    services, client = make_shell()
    _, auth = _bearer(services)
    for method, path in [("GET", "/api/v1/users"), ("POST", "/api/v1/invites"),
                         ("GET", "/api/v1/admin/settings"), ("PATCH", "/api/v1/admin/settings")]:
        answer = client.request(method, path, headers=auth, json={})
        assert answer.status_code == 403, path
        assert answer.json()["error"]["code"] == "forbidden"


def test_admin_manages_users_through_the_api(make_shell):
    services, client = make_shell()
    _, auth = _bearer(services, "root@example.org", "Root", admin=True)
    made = client.post("/api/v1/users", json={"email": "b@example.org", "name": "Bea"},
                       headers=auth)
    assert made.status_code == 201
    uid = made.json()["id"]
    dup = client.post("/api/v1/users", json={"email": "B@example.org", "name": "Bea"},
                      headers=auth)
    assert dup.status_code == 409 and "already exists" in dup.json()["error"]["message"]
    patched = client.patch(f"/api/v1/users/{uid}", json={"suspended": True}, headers=auth)
    assert patched.json()["suspended"] is True
    assert client.delete(f"/api/v1/users/{uid}", headers=auth).status_code == 204
    assert client.delete(f"/api/v1/users/{uid}", headers=auth).status_code == 404


def test_link_invitation_through_the_api(make_shell):
    services, client = make_shell()
    _, auth = _bearer(services, "root@example.org", "Root", admin=True)
    made = client.post("/api/v1/invites", json={"note": "hi"}, headers=auth)
    assert made.status_code == 201
    assert made.json()["url"].startswith("http://localhost:6080/invite/")
    invite_id = made.json()["id"]
    assert client.delete(f"/api/v1/invites/{invite_id}", headers=auth).status_code == 204
    assert client.get("/api/v1/invites", headers=auth).json()[0]["state"] == "revoked"
    page = client.get(made.json()["url"].removeprefix("http://localhost:6080"))
    assert page.status_code == 410


@pytest.mark.parametrize(("body", "needle"), [
    ({"email": "not-an-address", "name": "X"}, "not a valid email address"),
    ({"email": "x@example.org", "name": ""}, "Name is empty"),
    ({"email": "x@example.org"}, "Field 'name'"),
    ({"email": "x@example.org", "name": "X", "extra": 1}, "Field 'extra'"),
])
def test_malformed_bodies_get_a_one_line_error(make_shell, body, needle):
    services, client = make_shell()
    _, auth = _bearer(services, "root@example.org", "Root", admin=True)
    answer = client.post("/api/v1/users", json=body, headers=auth)
    assert answer.status_code in (400, 422)
    assert needle in answer.json()["error"]["message"]
    assert services.identity.users.find_by_email("x@example.org") is None


def test_non_json_body_is_refused(make_shell):
    services, client = make_shell()
    _, auth = _bearer(services, "root@example.org", "Root", admin=True)
    answer = client.post("/api/v1/users", content=b"{not json",
                         headers={**auth, "Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_input"
    assert "not valid JSON" in answer.json()["error"]["message"]


def test_settings_patch_is_all_or_nothing(make_shell):
    services, client = make_shell()
    _, auth = _bearer(services, "root@example.org", "Root", admin=True)
    bad = client.patch("/api/v1/admin/settings",
                       json={"signup_policy": "open", "smtp_security": "ssl"}, headers=auth)
    assert bad.status_code == 400 and "smtp.security" in bad.json()["error"]["message"]
    assert client.get("/api/v1/admin/settings", headers=auth).json()["signup_policy"] == "invite"
    ok = client.patch("/api/v1/admin/settings", json={"signup_policy": "open",
                                                       "smtp_password": "s3cret"}, headers=auth)
    assert ok.status_code == 200
    assert ok.json()["signup_policy"] == "open" and ok.json()["smtp_password_set"] is True
    assert "s3cret" not in ok.text


def test_openapi_describes_the_api(make_shell):
    _, client = make_shell()
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["info"]["title"] == "Sandhaven API"
    for path in ("/me", "/me/tokens", "/users", "/invites", "/admin/settings"):
        assert path in spec["paths"], path


def test_session_cookie_works_for_the_api(make_shell):
    services, client = make_shell()
    login_as(client, services, "a@example.org", "Ann")
    assert client.get("/api/v1/me").json()["name"] == "Ann"


def test_unknown_api_path_is_json_404(make_shell):
    _, client = make_shell()
    answer = client.get("/api/v1/nothing")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "http_error"


def test_personal_tokens_are_capped(make_shell):
    services, client = make_shell()
    user, auth = _bearer(services)
    for _ in range(99):
        services.identity.tokens.create(user.id, "t")
    answer = client.post("/api/v1/me/tokens", json={"label": "one too many"}, headers=auth)
    assert answer.status_code == 409 and "revoke some" in answer.json()["error"]["message"]
