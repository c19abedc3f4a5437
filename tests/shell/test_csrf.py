from sandhaven.testing import csrf_from
from tests.conftest import login_as


def test_form_without_csrf_token_is_refused_and_changes_nothing(make_shell):
    services, client = make_shell()
    uid = login_as(client, services, "a@example.org", "Ann")
    client.get("/account")  # gets a CSRF cookie, but the forged form has no field
    answer = client.post("/account/profile", data={"name": "Mallory", "handle": "mal"})
    assert answer.status_code == 403
    assert "did not come from this site" in answer.text
    assert services.identity.users.get(uid).name == "Ann"


def test_form_with_a_wrong_token_is_refused(make_shell):
    services, client = make_shell()
    uid = login_as(client, services, "a@example.org", "Ann")
    client.get("/account")
    answer = client.post("/account/profile",
                         data={"csrf_token": "x" * 43, "name": "Mallory", "handle": "mal"})
    assert answer.status_code == 403
    assert services.identity.users.get(uid).name == "Ann"


def test_cross_site_origin_is_refused_even_with_a_token(make_shell):
    services, client = make_shell()
    login_as(client, services, "a@example.org", "Ann")
    token = csrf_from(client.get("/account").text)
    answer = client.post("/account/tokens", data={"csrf_token": token, "label": "x"},
                         headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and "Cross-site" in answer.text
    ok = client.post("/account/tokens", data={"csrf_token": token, "label": "x"},
                     headers={"Origin": "http://localhost:6080"})
    assert ok.status_code == 200


def test_cookie_authenticated_api_calls_need_the_csrf_header(make_shell):
    services, client = make_shell()
    login_as(client, services, "a@example.org", "Ann")
    token = csrf_from(client.get("/account").text)
    refused = client.post("/api/v1/me/tokens", json={"label": "t"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    allowed = client.post("/api/v1/me/tokens", json={"label": "t"},
                          headers={"X-CSRF-Token": token})
    assert allowed.status_code == 201


def test_login_form_itself_is_protected(make_shell):
    _, client = make_shell(smtp_host="127.0.0.1")
    assert client.post("/login", data={"email": "a@example.org"}).status_code == 403


def test_every_state_changing_shell_route_refuses_without_a_token(make_shell):
    """Walk the shell's routes: each POST/PUT/PATCH/DELETE outside the API refuses a
    request that carries the CSRF cookie but not the token."""
    from fastapi.routing import APIRoute

    services, client = make_shell(dev=True, smtp_host="127.0.0.1")
    login_as(client, services, "root@example.org", "Root", admin=True)
    client.get("/account")
    from sandhaven.shell.app import PAGE_ROUTERS

    checked = 0
    for route in [r for router in PAGE_ROUTERS for r in router.routes]:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods - {"GET", "HEAD"}:
            path = route.path.replace("{user_id}", "x").replace("{token_id}", "1") \
                .replace("{invite_id}", "1").replace("{token}", "t")
            answer = client.request(method, path, data={"name": "Alice Dev"})
            assert answer.status_code == 403, (method, path)
            checked += 1
    assert checked >= 12


def test_a_planted_csrf_cookie_does_not_work_for_a_logged_in_session(make_shell):
    services, client = make_shell()
    uid = login_as(client, services, "a@example.org", "Ann")
    client.cookies.set("sandhaven_csrf", "abc")
    answer = client.post("/account/profile", data={"csrf_token": "abc", "name": "Mallory",
                                                   "handle": "mal"})
    assert answer.status_code == 403
    assert services.identity.users.get(uid).name == "Ann"


def test_a_malformed_cookie_header_cannot_skip_the_check(make_shell):
    services, client = make_shell()
    uid = login_as(client, services, "a@example.org", "Ann")
    session = client.cookies.get("sandhaven_session")
    client.cookies.clear()
    answer = client.patch("/api/v1/me", json={"name": "Mallory"},
                          headers={"Cookie": f'a="x; sandhaven_session={session}'})
    assert answer.status_code in (401, 403)
    assert services.identity.users.get(uid).name == "Ann"


def test_the_token_changes_with_the_session(make_shell):
    services, client = make_shell()
    login_as(client, services, "a@example.org", "Ann")
    first = csrf_from(client.get("/account").text)
    login_as(client, services, "a@example.org", "Ann")
    second = csrf_from(client.get("/account").text)
    assert first != second
    assert client.post("/account/tokens", data={"csrf_token": first}).status_code == 403
