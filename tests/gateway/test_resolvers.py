"""Session hosts and the API host through the whole server stack (in-process), with
a real grain of the Hello app, which answers with every X-Sandstorm-* header."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from starlette.testclient import TestClient

from sandhaven.grains.sessions import host_id_of
from tests.conftest import BASE, bearer


def _open(gs, client: TestClient, grain_id: str) -> tuple[TestClient, str]:  # type: ignore[no-untyped-def]
    """Open a session through the API and follow its init URL in a fresh browser."""
    answer = client.post(f"/api/v1/grains/{grain_id}/sessions")
    assert answer.status_code == 201, answer.text
    url = answer.json()["url"]
    origin = "http://" + answer.json()["host"]
    browser = gs.browser(origin)
    init = browser.get(url.removeprefix(origin) + "&path=/notes")
    assert init.status_code == 303 and init.headers["location"] == "/notes"
    cookie = init.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Domain" not in cookie
    # Browsers treat http://*.localhost as secure and send this Secure cookie; httpx
    # does not, so hand it over as a browser would.
    assert "Secure" in cookie and "SameSite=None" in cookie and "Partitioned" in cookie
    name, _, value = cookie.split(";", 1)[0].partition("=")
    browser.cookies.set(name, value)
    return browser, origin


def _headers(answer) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The X-Sandstorm-* headers the Hello app received, names lower-cased."""
    return {k.lower(): v for k, v in answer.json()["headers"].items()}


def test_owner_reaches_the_grain_with_exact_identity_headers(grain_server):
    gs = grain_server
    uid = bearer(gs.client, gs.services, "rene@example.org", "Renée Dupont")
    gs.services.identity.users.update_profile(uid, handle="renee", pronouns="female")
    grain = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    browser, origin = _open(gs, gs.client, grain["id"])
    answer = browser.get("/", headers={"X-Sandstorm-User-Id": "f" * 32,
                                       "X-Sandstorm-Permissions": "admin"})
    assert answer.status_code == 200
    headers = _headers(answer)
    assert headers["x-sandstorm-username"] == "Ren%C3%A9e%20Dupont"
    assert headers["x-sandstorm-permissions"] == "write"
    assert len(headers["x-sandstorm-user-id"]) == 32 and headers["x-sandstorm-user-id"] != "f" * 32
    assert headers["x-sandstorm-preferred-handle"] == "renee"
    assert headers["x-sandstorm-user-pronouns"] == "female"
    picture = headers["x-sandstorm-user-picture"]
    assert picture.startswith(f"{BASE}/identicon/") and picture.endswith(".svg")
    svg = gs.client.get(picture.removeprefix(BASE))
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.startswith("<svg") and uid not in picture
    assert headers["x-sandstorm-base-path"] == origin
    assert headers["x-sandstorm-session-type"] == "normal"
    assert len(headers["x-sandstorm-tab-id"]) == 32
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors" in csp and BASE in csp
    assert answer.headers["referrer-policy"] == "same-origin"
    # The shell's own cookies never reach the grain.
    browser.cookies.set("sandhaven_session", "shell-secret")
    echoed = browser.get("/").json()["headers"]
    assert "shell-secret" not in str(echoed)
    # Per-grain user ID: stable within the grain, different in another grain.
    other = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "M"}).json()
    browser2, _ = _open(gs, gs.client, other["id"])
    other_id = _headers(browser2.get("/"))["x-sandstorm-user-id"]
    again, _ = _open(gs, gs.client, grain["id"])
    assert _headers(again.get("/"))["x-sandstorm-user-id"] == headers["x-sandstorm-user-id"]
    assert other_id != headers["x-sandstorm-user-id"]


def test_session_host_without_the_cookie_is_refused_and_starts_nothing(grain_server):
    gs = grain_server
    bearer(gs.client, gs.services, "a@example.org", "Ann")
    grain = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    url = gs.client.post(f"/api/v1/grains/{grain['id']}/sessions").json()["url"]
    host = urlsplit(url).netloc
    stranger = gs.browser(f"http://{host}")
    assert stranger.get("/").status_code == 403
    forged = "A" * 43
    stranger.cookies.set("sandhaven_grain_session", forged)
    assert stranger.get("/").status_code == 403
    assert gs.services.supervisor.status(grain["id"]).value == "stopped"
    # A made-up session host is refused too.
    fake = gs.browser(f"http://ui-{host_id_of(forged)}.localhost:6080")
    assert fake.get("/").status_code == 403


def test_init_link_works_once(grain_server):
    gs = grain_server
    bearer(gs.client, gs.services, "a@example.org", "Ann")
    grain = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    url = gs.client.post(f"/api/v1/grains/{grain['id']}/sessions").json()["url"]
    origin = f"http://{urlsplit(url).netloc}"
    first = gs.browser(origin)
    assert first.get(url.removeprefix(origin)).status_code == 303
    thief = gs.browser(origin)
    assert thief.get(url.removeprefix(origin)).status_code == 403


def test_revoked_sessions_are_refused_at_once(grain_server):
    gs = grain_server
    uid = bearer(gs.client, gs.services, "a@example.org", "Ann")
    grain = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    browser, _ = _open(gs, gs.client, grain["id"])
    assert browser.get("/").status_code == 200
    gs.client.delete(f"/api/v1/grains/{grain['id']}")  # to the trash: sessions end
    assert browser.get("/").status_code == 403
    gs.client.post(f"/api/v1/grains/{grain['id']}/restore")
    browser, _ = _open(gs, gs.client, grain["id"])
    assert browser.get("/").status_code == 200
    admin = gs.services.identity.users.create("root@example.org", "Root", is_admin=True)
    gs.services.identity.users.set_suspended(admin.id, uid, True)
    assert browser.get("/").status_code == 403  # at once: no cache outlives a suspension
    gs.services.identity.users.set_suspended(admin.id, uid, False)
    assert browser.get("/").status_code == 403  # its sessions stay ended


def test_api_host_with_bearer_and_basic_and_revocation(grain_server):
    gs = grain_server
    bearer(gs.client, gs.services, "a@example.org", "Ann")
    grain = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    made = gs.client.post(f"/api/v1/grains/{grain['id']}/api-tokens",
                          json={"role": 1, "label": "viewer script"})
    assert made.status_code == 201
    body = made.json()
    assert body["url"] == "http://api.localhost:6080"
    assert body["webkey"] == f"{body['url']}#{body['token']}"
    api = gs.browser(body["url"])
    answer = api.get("/", headers={"Authorization": f"Bearer {body['token']}"})
    assert answer.status_code == 200
    assert _headers(answer)["x-sandstorm-permissions"] == ""  # viewer: no write
    assert answer.headers["access-control-allow-origin"] == "*"
    basic = base64.b64encode(f"x:{body['token']}".encode()).decode()
    assert api.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    refused = api.post("/", content="hi", headers={"Authorization": f"Bearer {body['token']}"})
    assert refused.status_code == 403  # the app refuses a write without the permission
    for headers in ({}, {"Authorization": "Bearer nope"}):
        refused = api.get("/", headers=headers)
        assert refused.status_code == 401
        # git and other Basic clients send credentials only after this challenge.
        assert refused.headers["www-authenticate"].startswith("Basic realm=")
    auth = {"Authorization": f"Bearer {body['token']}"}
    for path in ("/%2e%2e/secret", "/a/%2E/b", "/a/%2e%2E"):  # clients normalise plain ..
        assert api.get(path, headers=auth).status_code == 400, path
    token_id = body["id"]
    assert gs.client.delete(f"/api/v1/grains/{grain['id']}/api-tokens/{token_id}"
                            ).status_code == 204
    assert api.get("/", headers={"Authorization": f"Bearer {body['token']}"}).status_code == 401


def test_full_access_token_can_write(grain_server):
    gs = grain_server
    bearer(gs.client, gs.services, "a@example.org", "Ann")
    grain = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    token = gs.client.post(f"/api/v1/grains/{grain['id']}/api-tokens",
                           json={"label": "sync"}).json()["token"]
    api = gs.browser("http://api.localhost:6080")
    auth = {"Authorization": f"Bearer {token}"}
    assert api.post("/", content="from the api", headers=auth).status_code == 200
    assert api.get("/", headers=auth).json()["note"] == "from the api"


def test_bad_token_requests_are_refused(grain_server):
    gs = grain_server
    bearer(gs.client, gs.services, "a@example.org", "Ann")
    grain = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    bad_role = gs.client.post(f"/api/v1/grains/{grain['id']}/api-tokens", json={"role": 9})
    assert bad_role.status_code == 400 and "role" in bad_role.json()["error"]["message"]
    other = gs.browser()
    bearer(other, gs.services, "b@example.org", "Bob")
    assert other.post(f"/api/v1/grains/{grain['id']}/api-tokens", json={}).status_code == 404
    assert other.post(f"/api/v1/grains/{grain['id']}/sessions").status_code == 404


def test_a_stored_picture_a_header_cannot_carry_is_left_out(grain_server):
    """A picture URL saved before profiles refused line breaks must not break every
    request of its user: the header is left out, the request goes through."""
    from sandhaven.store.models import User

    gs = grain_server
    uid = bearer(gs.client, gs.services, "a@example.org", "Ann")
    with gs.services.store.session() as s:
        s.get(User, uid).picture_url = "https://x.org/a\r\nx-sandstorm-permissions: admin"
    grain = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    browser, _ = _open(gs, gs.client, grain["id"])
    answer = browser.get("/")
    assert answer.status_code == 200
    headers = _headers(answer)
    assert "x-sandstorm-user-picture" not in headers
    assert headers["x-sandstorm-permissions"] == "write"


def test_the_session_cookie_counts_in_any_cookie_header(grain_server):
    gs = grain_server
    bearer(gs.client, gs.services, "a@example.org", "Ann")
    grain = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    browser, origin = _open(gs, gs.client, grain["id"])
    name = "sandhaven_grain_session"
    value = next(c.value for c in browser.cookies.jar if c.name == name)
    bare = gs.browser(origin)
    split = bare.get("/", headers=[("Cookie", "theme=dark"), ("Cookie", f"{name}={value}")])
    assert split.status_code == 200
    assert bare.get("/", headers=[("Cookie", "theme=dark")]).status_code == 403


def _frame_session(gs, shell: TestClient, grain_id: str) -> TestClient:  # type: ignore[no-untyped-def]
    """Open the grain page as a browser would and enter its frame's session host."""
    import html
    import re

    page = shell.get(f"/grains/{grain_id}")
    assert page.status_code == 200
    url = html.unescape(re.search(r'id="grain-frame"[^>]*src="([^"]+)"', page.text)[1])
    parts = urlsplit(url)
    frame = gs.browser(f"{parts.scheme}://{parts.netloc}")
    init = frame.get(f"{parts.path}?{parts.query}")
    assert init.status_code == 303
    name, _, value = init.headers["set-cookie"].split(";", 1)[0].partition("=")
    frame.cookies.set(name, value)
    assert frame.get("/").status_code == 200
    return frame


def test_logging_out_ends_the_grain_sessions_of_that_login(grain_server):
    """Log out ends the grains opened from that browser's login (not another
    device's); Log out everywhere ends every grain session of the user, those
    opened with an API token included — each refused at once on its host."""
    from tests.conftest import form_post, login_as

    gs = grain_server
    uid = bearer(gs.client, gs.services, "a@example.org", "Ann")
    gid = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    laptop, phone = gs.browser(), gs.browser()
    login_as(laptop, gs.services, "a@example.org")
    login_as(phone, gs.services, "a@example.org")
    on_laptop, on_phone = _frame_session(gs, laptop, gid), _frame_session(gs, phone, gid)
    by_token, _ = _open(gs, gs.client, gid)  # opened with the API token

    assert form_post(laptop, "/grains", "/logout", {}).status_code == 303
    assert on_laptop.get("/").status_code == 403
    assert on_phone.get("/").status_code == 200 and by_token.get("/").status_code == 200

    assert form_post(phone, "/account", "/account/logout-everywhere", {}).status_code == 303
    assert on_phone.get("/").status_code == 403
    assert by_token.get("/").status_code == 403
    assert gs.services.identity.users.get(uid) is not None  # the account itself stays
