from datetime import timedelta

from sqlalchemy import update

from sandhaven.store import utcnow
from sandhaven.store.models import LoginSession
from tests.conftest import form_post, login_as


def test_expired_session_is_logged_out(make_shell):
    services, client = make_shell()
    login_as(client, services, "a@example.org", "Ann")
    assert client.get("/api/v1/me").status_code == 200
    with services.store.session() as s:
        s.execute(update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/account").headers["location"] == "/login"


def test_logout_everywhere_ends_every_session(make_shell):
    services, one = make_shell()
    uid = login_as(one, services, "a@example.org", "Ann")
    two = one.__class__(one.app, base_url="http://localhost:6080", follow_redirects=False)
    two.cookies.set("sandhaven_session", services.identity.sessions.create(uid))
    assert two.get("/api/v1/me").status_code == 200
    answer = form_post(one, "/account", "/account/logout-everywhere", {})
    assert answer.status_code == 303
    assert one.get("/api/v1/me").status_code == 401
    assert two.get("/api/v1/me").status_code == 401


def test_logout_ends_only_this_session(make_shell):
    services, one = make_shell()
    uid = login_as(one, services, "a@example.org", "Ann")
    two = one.__class__(one.app, base_url="http://localhost:6080", follow_redirects=False)
    two.cookies.set("sandhaven_session", services.identity.sessions.create(uid))
    form_post(one, "/account", "/logout", {})
    assert one.get("/api/v1/me").status_code == 401
    assert two.get("/api/v1/me").status_code == 200


def test_session_cookie_is_secure_under_https(make_shell):
    services, client = make_shell(base_url="https://box.example.org")
    services.identity.users.create("a@example.org", "Ann")
    client = client.__class__(client.app, base_url="https://box.example.org",
                              follow_redirects=False)
    page = client.get("/login")
    assert "secure" in page.headers["set-cookie"].lower()
