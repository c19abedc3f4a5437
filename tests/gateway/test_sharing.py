"""Sharing through the whole stack with a real grain of the Hello app (roles:
0 editor with ``write``, 1 viewer with nothing), reading the X-Sandstorm-*
headers the app echoes: who holds what, on the very next request."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from sandhaven.testing.servers import run_grain
from tests.conftest import BASE, bearer, login_as

EDITOR, VIEWER = 0, 1


def _enter(gs, url: str) -> TestClient:  # type: ignore[no-untyped-def]
    """Follow a session's init URL in a fresh browser; returns it with the cookie."""
    origin = "/".join(url.split("/", 3)[:3])
    browser = gs.browser(origin)
    init = browser.get(url.removeprefix(origin))
    assert init.status_code == 303, init.text
    # The cookie is Secure (browsers send it on http://*.localhost; httpx does not).
    name, _, value = init.headers["set-cookie"].split(";", 1)[0].partition("=")
    browser.cookies.set(name, value)
    return browser


def _open(gs, client: TestClient, grain_id: str) -> TestClient:  # type: ignore[no-untyped-def]
    answer = client.post(f"/api/v1/grains/{grain_id}/sessions")
    assert answer.status_code == 201, answer.text
    return _enter(gs, answer.json()["url"])


def _open_anonymously(gs, link: str) -> TestClient:  # type: ignore[no-untyped-def]
    page = gs.browser().get(link.removeprefix(BASE))
    assert page.status_code == 200, page.text
    src = re.search(r'id="grain-frame"[^>]*src="([^"]+)"', page.text)
    assert src is not None
    return _enter(gs, html.unescape(src.group(1)))


def _seen(browser: TestClient) -> dict[str, str] | int:
    """The X-Sandstorm-* headers the app received (lower-case names), or the status."""
    answer = browser.get("/")
    if answer.status_code != 200:
        return answer.status_code
    return {k.lower(): v for k, v in answer.json()["headers"].items()}


def _person(gs, email: str, name: str) -> tuple[TestClient, str]:  # type: ignore[no-untyped-def]
    client = gs.browser()
    return client, bearer(client, gs.services, email, name)


def _share(client: TestClient, grain_id: str, role: int, label: str = "", **more) -> dict:  # type: ignore[no-untyped-def]
    made = client.post(f"/api/v1/grains/{grain_id}/shares",
                       json={"role": role, "label": label, **more})
    assert made.status_code == 201, made.text
    return made.json()


def _expiring_in(seconds: float) -> tuple[str, float]:
    """An expiry ``seconds`` ahead: (ISO 8601 with Z, as time.time())."""
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return at.isoformat().replace("+00:00", "Z"), at.timestamp()


def _until(at: float) -> None:
    """Wait for the clock to reach ``at`` (time.time()): the expiry under test."""
    while time.time() < at:
        time.sleep(min(0.02, max(0.0, at - time.time())))


def _refused_within(check, at: float, limit: float = 1.0):  # type: ignore[no-untyped-def]
    """Poll ``check()`` (a response) from time ``at`` on until it is no longer 200;
    asserts that happened within ``limit`` seconds of ``at``; returns it."""
    _until(at)
    while True:
        answer = check()
        if answer.status_code != 200:
            assert time.time() - at <= limit, f"refused {time.time() - at:.2f} s late"
            return answer
        assert time.time() - at <= limit, "still served a second after expiry"


class _Log:
    """The rows a grain's access log gained since the last look, oldest first, as
    ``(via, user_name, label, role, permissions, identity_id)``; every row must also
    carry the client's IP address and user agent (the test client's own). ``rows``
    keeps the last look's rows whole (``share_id``, ``token_id``…)."""

    def __init__(self, owner: TestClient, grain_id: str) -> None:
        self.owner, self.grain_id, self.seen = owner, grain_id, 0
        self.rows: list[dict] = []

    def new(self) -> list[tuple]:
        rows = self.owner.get(f"/api/v1/grains/{self.grain_id}/access-log").json()
        fresh = list(reversed(rows))[self.seen:]
        self.seen, self.rows = len(rows), fresh
        for row in fresh:
            assert row["client_ip"] and row["user_agent"], row
        return [(r["via"], r["user_name"], r["label"], r["role"], r["permissions"],
                 r["identity_id"]) for r in fresh]


def _accept(client: TestClient, link: str) -> None:
    accepted = client.post(link.removeprefix(BASE))
    assert accepted.status_code == 303, accepted.text


def test_owner_link_holder_and_anonymous_visitor_see_their_roles(grain_server):
    gs = grain_server
    owner, _ = _person(gs, "ann@example.org", "Ann")
    grain = owner.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    log = _Log(owner, grain["id"])
    seen = _seen(_open(gs, owner, grain["id"]))
    assert seen["x-sandstorm-permissions"] == "write" and seen["x-sandstorm-username"] == "Ann"
    assert log.new() == [("owner", "Ann", "", None, ["write"], seen["x-sandstorm-user-id"])]

    viewer_link = _share(owner, grain["id"], VIEWER, "read only")
    assert viewer_link["url"].startswith(f"{BASE}/shared/")
    assert len(viewer_link["url"].rsplit("/", 1)[1]) == 43  # 256 bits, base64url
    assert viewer_link["kind"] == "link" and viewer_link["role_title"] == "viewer"

    # A logged-in person: the choice page, then the grant is theirs.
    bob, bob_id = _person(gs, "bob@example.org", "Bob")
    assert bob.get(f"/api/v1/grains/{grain['id']}").status_code == 404
    assert bob.get(f"/api/v1/grains/{grain['id']}/access").status_code == 404
    _accept(bob, viewer_link["url"])
    assert bob.get(f"/api/v1/grains/{grain['id']}").json()["title"] == "N"
    assert bob.patch(f"/api/v1/grains/{grain['id']}", json={"title": "M"}).status_code == 404
    assert bob.delete(f"/api/v1/grains/{grain['id']}").status_code == 404
    shared = bob.get("/api/v1/grains?shared=true").json()
    assert [g["id"] for g in shared] == [grain["id"]]
    assert bob.get("/api/v1/grains").json() == []  # not among his own
    bob_view = _open(gs, bob, grain["id"])
    seen = _seen(bob_view)
    assert seen["x-sandstorm-username"] == "Bob" and seen["x-sandstorm-permissions"] == ""
    assert len(seen["x-sandstorm-user-id"]) == 32
    assert bob_view.post("/", content="edit").status_code == 403  # the app refuses
    # Taking the link wrote nothing; opening the grain wrote one row, however many
    # requests the session makes.
    assert log.new() == [("share", "Bob", "read only", VIEWER, [],
                          seen["x-sandstorm-user-id"])]
    _accept(bob, viewer_link["url"])  # opening again adds nothing
    people = [a for a in owner.get(f"/api/v1/grains/{grain['id']}/access").json()
              if a["kind"] == "person"]
    assert [(p["recipient"]["id"], p["role"], p["parent_id"]) for p in people] == [
        (bob_id, VIEWER, viewer_link["id"])]
    assert people[0]["last_used_at"] is not None

    # Not logged in: Anonymous User, no user ID, the link's role.
    anonymous = _seen(_open_anonymously(gs, viewer_link["url"]))
    assert anonymous["x-sandstorm-username"] == "Anonymous%20User"
    assert "x-sandstorm-user-id" not in anonymous
    assert anonymous["x-sandstorm-permissions"] == ""
    editor_link = _share(owner, grain["id"], EDITOR)
    writer = _open_anonymously(gs, editor_link["url"])
    assert _seen(writer)["x-sandstorm-permissions"] == "write"
    assert writer.post("/", content="anonymous edit").status_code == 200
    assert log.new() == [
        ("link", "Anonymous User", "read only", VIEWER, [], None),
        ("link", "Anonymous User", "Sharing link", EDITOR, ["write"], None)]

    # A logged-in visitor may open it anonymously: no grant is recorded for them,
    # and the page says what the access log does record.
    carol, _ = _person(gs, "carol@example.org", "Carol")
    choice = carol.get(editor_link["url"].removeprefix(BASE))
    assert choice.status_code == 200 and 'href="?anonymous=1"' in choice.text
    assert "nothing is recorded" not in choice.text
    said = " ".join(choice.text.split())
    assert ("access log still records the opening as anonymous, with this link’s label, "
            "your IP address and your browser’s user agent") in said
    quiet = carol.get(editor_link["url"].removeprefix(BASE) + "?anonymous=1",
                      headers={"User-Agent": "carols-browser/1"})
    assert quiet.status_code == 200 and "grain-frame" in quiet.text
    assert carol.get("/api/v1/grains?shared=true").json() == []
    _enter(gs, html.unescape(re.search(r'id="grain-frame"[^>]*src="([^"]+)"',
                                       quiet.text).group(1)))
    rows = owner.get(f"/api/v1/grains/{grain['id']}/access-log").json()
    assert rows[0]["user_id"] is None and rows[0]["user_agent"] == "carols-browser/1"
    assert log.new() == [("link", "Anonymous User", "Sharing link", EDITOR, ["write"], None)]

    # API tokens: one row per token per hour, not per request.
    token = bob.post(f"/api/v1/grains/{grain['id']}/api-tokens",
                     json={"role": VIEWER, "label": "bob's script"}).json()
    api = gs.browser("http://api.localhost:6080")
    for _ in range(3):
        answer = api.get("/", headers={"Authorization": f"Bearer {token['token']}"})
        assert answer.status_code == 200
    assert log.new() == [("token", "Bob", "bob's script", VIEWER, [],
                          seen["x-sandstorm-user-id"])]


def test_reshare_is_capped_and_revoking_a_middle_link_cuts_off_its_children(grain_server):
    gs = grain_server
    owner, _ = _person(gs, "ann@example.org", "Ann")
    grain = owner.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()
    gid = grain["id"]
    log = _Log(owner, gid)
    first = _share(owner, gid, EDITOR, "team")
    bob, _ = _person(gs, "bob@example.org", "Bob")
    _accept(bob, first["url"])
    bob_view = _open(gs, bob, gid)
    bob_seen = _seen(bob_view)
    assert bob_seen["x-sandstorm-permissions"] == "write"
    bob_identity = bob_seen["x-sandstorm-user-id"]
    assert log.new() == [("share", "Bob", "team", EDITOR, ["write"], bob_identity)]

    # Bob re-shares as editor; Carol takes it; an anonymous visitor uses it too.
    middle = _share(bob, gid, EDITOR, "from bob")
    carol, _ = _person(gs, "carol@example.org", "Carol")
    _accept(carol, middle["url"])
    carol_view = _open(gs, carol, gid)
    anonymous_view = _open_anonymously(gs, middle["url"])
    carol_seen = _seen(carol_view)
    assert carol_seen["x-sandstorm-permissions"] == "write"
    assert _seen(anonymous_view)["x-sandstorm-permissions"] == "write"
    assert log.new() == [
        ("share", "Carol", "from bob", EDITOR, ["write"], carol_seen["x-sandstorm-user-id"]),
        ("link", "Anonymous User", "from bob", EDITOR, ["write"], None)]

    # The owner makes the link Bob took a viewer's: Bob and everything he shared is
    # capped on the very next request of the sessions already open.
    bob_share = next(a for a in owner.get(f"/api/v1/grains/{gid}/access").json()
                     if a["kind"] == "person" and a["parent_id"] == first["id"])
    changed = owner.patch(f"/api/v1/grains/{gid}/access/{first['id']}",
                          json={"role": VIEWER})
    assert changed.status_code == 200 and changed.json()["role_title"] == "viewer"
    carol_share = next(a for a in bob.get(f"/api/v1/grains/{gid}/access").json()
                       if a["kind"] == "person")
    assert carol_share["role_title"] == "editor" and carol_share["permissions"] == []
    assert _seen(bob_view)["x-sandstorm-permissions"] == ""
    assert _seen(carol_view)["x-sandstorm-permissions"] == ""
    assert _seen(anonymous_view)["x-sandstorm-permissions"] == ""
    assert carol_view.post("/", content="edit").status_code == 403
    # Sharing more than he now holds is refused, and nothing is made.
    before = bob.get(f"/api/v1/grains/{gid}/access").json()
    wider = bob.post(f"/api/v1/grains/{gid}/shares", json={"role": EDITOR})
    assert wider.status_code == 403 and "write" in wider.json()["error"]["message"]
    assert bob.get(f"/api/v1/grains/{gid}/access").json() == before
    owner.patch(f"/api/v1/grains/{gid}/access/{first['id']}", json={"role": EDITOR})
    assert _seen(carol_view)["x-sandstorm-permissions"] == "write"
    # Role changes reach open sessions without a new row (rows are per opening).
    assert log.new() == []
    # A session opened now is logged with what the capped chain grants.
    owner.patch(f"/api/v1/grains/{gid}/access/{first['id']}", json={"role": VIEWER})
    assert _seen(_open(gs, carol, gid))["x-sandstorm-permissions"] == ""
    assert log.new() == [("share", "Carol", "from bob", EDITOR, [],
                          carol_seen["x-sandstorm-user-id"])]
    owner.patch(f"/api/v1/grains/{gid}/access/{first['id']}", json={"role": EDITOR})

    # A suspended sharer's shares grant nothing while the suspension lasts.
    admin = gs.services.identity.users.create("root@example.org", "Root", is_admin=True)
    users = gs.services.identity.users
    users.set_suspended(admin.id, bob_share["recipient"]["id"], True)
    assert _seen(carol_view) == 403 and _seen(anonymous_view) == 403
    assert _seen(bob_view) == 403 and bob.get("/api/v1/me").status_code == 401
    assert bob.post(f"/api/v1/grains/{gid}/sessions").status_code == 401
    assert log.new() == []  # refused openings write nothing
    users.set_suspended(admin.id, bob_share["recipient"]["id"], False)
    assert _seen(carol_view)["x-sandstorm-permissions"] == "write"
    bob_view = _open(gs, bob, gid)  # his own sessions ended for good
    assert log.new() == [("share", "Bob", "team", EDITOR, ["write"], bob_identity)]

    # Revoking Bob's link cuts off Carol and the anonymous visitor, not Bob.
    assert owner.delete(f"/api/v1/grains/{gid}/access/{middle['id']}").status_code == 204
    assert _seen(carol_view) == 403 and _seen(anonymous_view) == 403
    assert _seen(bob_view)["x-sandstorm-permissions"] == "write"
    assert carol.post(f"/api/v1/grains/{gid}/sessions").status_code == 404
    assert carol.get("/api/v1/grains?shared=true").json() == []
    assert gs.browser().get(middle["url"].removeprefix(BASE)).status_code == 410
    assert log.new() == []
    # Revoking the first link cuts off Bob, whose access came from it.
    assert owner.delete(f"/api/v1/grains/{gid}/access/{first['id']}").status_code == 204
    assert _seen(bob_view) == 403
    assert [a for a in owner.get(f"/api/v1/grains/{gid}/access").json()] == []
    seen = _seen(_open(gs, owner, gid))
    assert seen["x-sandstorm-permissions"] == "write"
    assert log.new() == [("owner", "Ann", "", None, ["write"], seen["x-sandstorm-user-id"])]


def test_who_may_change_what(grain_server):
    gs = grain_server
    owner, _ = _person(gs, "ann@example.org", "Ann")
    gid = owner.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    link = _share(owner, gid, EDITOR, "team")
    bob, _ = _person(gs, "bob@example.org", "Bob")
    _accept(bob, link["url"])
    # Bob sees only what he created, and cannot touch the owner's link.
    assert bob.get(f"/api/v1/grains/{gid}/access").json() == []
    assert bob.delete(f"/api/v1/grains/{gid}/access/{link['id']}").status_code == 404
    assert bob.patch(f"/api/v1/grains/{gid}/access/{link['id']}",
                     json={"role": VIEWER}).status_code == 404
    own = _share(bob, gid, VIEWER, "mine")
    listed = bob.get(f"/api/v1/grains/{gid}/access").json()
    assert [(a["id"], a["can_change"], a["created_by"]["name"]) for a in listed] == [
        (own["id"], True, "Bob")]
    assert bob.delete(f"/api/v1/grains/{gid}/access/{own['id']}").status_code == 204
    # A stranger learns nothing.
    eve, _ = _person(gs, "eve@example.org", "Eve")
    assert eve.post(f"/api/v1/grains/{gid}/shares", json={"role": VIEWER}).status_code == 404
    assert eve.get(f"/api/v1/grains/{gid}/access").status_code == 404


class _EchoGrains:
    """Stands in for the supervisor: every grain is the test grain on one socket
    (it echoes WebSocket messages; the Hello app has none)."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    async def ensure_running(self, grain_id: str) -> Path:
        return Path(self.socket_path)


def test_websockets_close_when_their_access_is_revoked_or_changed(grain_server, tmp_path):
    """Real sessions, shares and tokens; the relay runs on the server's loop."""
    from sandhaven.gateway.activity import ActivityCounter
    from sandhaven.gateway.hosts import HostClassifier, HostKind, HostRouter
    from sandhaven.gateway.proxy import GrainProxy
    from sandhaven.gateway.resolvers import ApiResolver, SessionResolver
    from sandhaven.gateway.upstream import UpstreamPool
    from sandhaven.gateway.websocket import REVOKED_CODE
    from sandhaven.grains.sessions import COOKIE_NAME, host_id_of

    gs = grain_server
    svc = gs.services
    owner, owner_id = _person(gs, "ann@example.org", "Ann")
    gid = owner.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    with run_grain(tmp_path) as grain:
        fake = _EchoGrains(grain.socket_path)
        classifier = HostClassifier(BASE, "*.localhost:6080")
        pool = UpstreamPool()
        relays = ActivityCounter()  # open WebSocket relays, per grain
        session_app = GrainProxy(SessionResolver(svc.grain_sessions, fake),  # type: ignore[arg-type]
                                 classifier=classifier, kind=HostKind.SESSION, pool=pool,
                                 activity=relays)
        api_app = GrainProxy(ApiResolver(svc.grain_tokens, fake),  # type: ignore[arg-type]
                             classifier=classifier, kind=HostKind.API, pool=pool,
                             activity=relays)

        def relays_open(count: int) -> None:
            """Wait until exactly ``count`` relays still run: a test session may only
            be left once the server side is done with it (else the test client
            cancels a relay still finishing, and reports that as an error)."""
            deadline = time.monotonic() + 10
            while relays.streams[gid] != count:
                assert time.monotonic() < deadline, f"{relays.streams[gid]} relays still open"
                time.sleep(0.005)
        app = HostRouter(gs.client.app, session_app, api_app, classifier=classifier)
        client = TestClient(app)
        client.portal = gs.client.portal  # one event loop, as in production

        def connect(opened_url: str):  # type: ignore[no-untyped-def]
            secret = opened_url.split("session=", 1)[1]
            origin = "/".join(opened_url.split("/", 3)[:3])
            assert svc.grain_sessions.init(host_id_of(secret), secret)
            return client.websocket_connect(origin.replace("http", "ws", 1) + "/ws",
                                            headers={"cookie": f"{COOKIE_NAME}={secret}"})

        editor = _share(owner, gid, EDITOR, "team")
        viewer = _share(owner, gid, VIEWER, "readers")
        expires, at = _expiring_in(3.0)
        brief = _share(owner, gid, VIEWER, "brief", expires=expires)
        expiring = connect(svc.grain_sessions.open_anonymous(brief["id"], gid).url)
        kept = connect(svc.grain_sessions.open(owner_id, gid).url)
        changed = connect(svc.grain_sessions.open_anonymous(editor["id"], gid).url)
        revoked = connect(svc.grain_sessions.open_anonymous(viewer["id"], gid).url)
        token = owner.post(f"/api/v1/grains/{gid}/api-tokens", json={"role": EDITOR}).json()
        by_token = client.websocket_connect("ws://api.localhost:6080/ws", headers={
            "authorization": f"Bearer {token['token']}"})
        with kept as k, changed as c, revoked as r, by_token as t, expiring as x:
            for ws in (k, c, r, t, x):
                ws.send_text("hello")
                assert ws.receive_text() == "hello"
            assert owner.patch(f"/api/v1/grains/{gid}/access/{editor['id']}",
                               json={"role": VIEWER}).status_code == 200
            assert c.receive() == {"type": "websocket.close", "code": REVOKED_CODE,
                                   "reason": "access changed"}
            assert owner.delete(f"/api/v1/grains/{gid}/access/{viewer['id']}"
                                ).status_code == 204
            assert r.receive()["code"] == REVOKED_CODE
            assert owner.delete(f"/api/v1/grains/{gid}/api-tokens/{token['id']}"
                                ).status_code == 204
            assert t.receive()["code"] == REVOKED_CODE
            # An expiring link's connection closes within a second of the expiry,
            # with nobody changing anything.
            assert x.receive() == {"type": "websocket.close", "code": REVOKED_CODE,
                                   "reason": "access changed"}
            assert at <= time.time() <= at + 1.0, f"closed {time.time() - at:.2f} s after"
            k.send_text("still here")  # the owner's connection is untouched
            assert k.receive_text() == "still here"
            relays_open(1)
            k.close(1000)
            relays_open(0)
        gs.client.portal.call(pool.aclose)


def test_revoking_a_share_ends_the_holders_sessions_and_tokens_for_good(grain_server):
    gs = grain_server
    owner, _ = _person(gs, "ann@example.org", "Ann")
    gid = owner.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    link = _share(owner, gid, VIEWER, "readers")
    bob, _ = _person(gs, "bob@example.org", "Bob")
    _accept(bob, link["url"])
    session = _open(gs, bob, gid)
    assert _seen(session)["x-sandstorm-permissions"] == ""
    # A viewer cannot make a token for a role beyond what he holds.
    wider = bob.post(f"/api/v1/grains/{gid}/api-tokens", json={"role": EDITOR})
    assert wider.status_code == 403
    token = bob.post(f"/api/v1/grains/{gid}/api-tokens", json={"role": VIEWER}).json()
    api = gs.browser("http://api.localhost:6080")
    auth = {"Authorization": f"Bearer {token['token']}"}
    assert api.get("/", headers=auth).status_code == 200
    assert owner.delete(f"/api/v1/grains/{gid}/access/{link['id']}").status_code == 204
    assert _seen(session) == 403 and api.get("/", headers=auth).status_code == 401
    # Granting Bob access again gives him new credentials, never the old ones back.
    _accept(bob, _share(owner, gid, VIEWER, "again")["url"])
    assert _seen(session) == 403
    assert api.get("/", headers=auth).status_code == 401
    assert _seen(_open(gs, bob, gid))["x-sandstorm-permissions"] == ""


def test_the_share_dialog_offers_only_roles_one_holds(grain_server):
    gs = grain_server
    owner, _ = _person(gs, "ann@example.org", "Ann")
    gid = owner.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    link = _share(owner, gid, VIEWER, "readers")
    bob = gs.browser()
    login_as(bob, gs.services, "bob@example.org", "Bob")
    bob_api, _ = _person(gs, "bob@example.org", "Bob")
    _accept(bob_api, link["url"])
    page = bob.get(f"/grains/{gid}").text
    share_select = page.split('id="share-role"', 1)[1].split("</select>", 1)[0]
    assert "can view" in share_select and "can edit" not in share_select
    owner_page = gs.browser()
    login_as(owner_page, gs.services, "ann@example.org", "Ann")
    owner_select = owner_page.get(f"/grains/{gid}").text.split('id="share-role"', 1)[1]
    assert "can edit" in owner_select.split("</select>", 1)[0]


def test_people_who_took_a_link_follow_its_current_role(grain_server):
    gs = grain_server
    owner, _ = _person(gs, "ann@example.org", "Ann")
    gid = owner.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    link = _share(owner, gid, VIEWER, "team")
    bob, _ = _person(gs, "bob@example.org", "Bob")
    _accept(bob, link["url"])
    bob_view = _open(gs, bob, gid)
    assert _seen(bob_view)["x-sandstorm-permissions"] == ""

    # Raising the link's role reaches Bob, who took it before, on his next request.
    raised = owner.patch(f"/api/v1/grains/{gid}/access/{link['id']}", json={"role": EDITOR})
    assert raised.status_code == 200, raised.text
    assert _seen(bob_view)["x-sandstorm-permissions"] == "write"
    bob_share = next(a for a in owner.get(f"/api/v1/grains/{gid}/access").json()
                     if a["kind"] == "person")
    assert (bob_share["role"], bob_share["role_title"], bob_share["permissions"],
            bob_share["follows_link"]) == (EDITOR, "editor", ["write"], True)
    page = gs.browser()
    login_as(page, gs.services, "ann@example.org", "Ann")
    table = page.get(f"/grains/{gid}").text
    assert "editor <span class=\"muted\">(the link’s role)</span>" in table
    assert f'id="role-{bob_share["id"]}"' not in table  # changed on the link only

    # His grant has no role of its own: changing it is refused, naming the link.
    refused = owner.patch(f"/api/v1/grains/{gid}/access/{bob_share['id']}",
                          json={"role": VIEWER})
    assert refused.status_code == 400 and "'team'" in refused.json()["error"]["message"]
    assert _seen(bob_view)["x-sandstorm-permissions"] == "write"

    # Lowering the link lowers him too.
    owner.patch(f"/api/v1/grains/{gid}/access/{link['id']}", json={"role": VIEWER})
    assert _seen(bob_view)["x-sandstorm-permissions"] == ""


def test_a_role_a_reshare_cannot_grant_is_refused(grain_server):
    gs = grain_server
    owner, _ = _person(gs, "ann@example.org", "Ann")
    gid = owner.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    bob, _ = _person(gs, "bob@example.org", "Bob")
    bobs = owner.post(f"/api/v1/grains/{gid}/shares",
                      json={"email": "bob@example.org", "role": VIEWER}).json()
    from_bob = _share(bob, gid, VIEWER, "from bob")
    # Even the owner cannot make Bob's link an editor's while Bob is a viewer.
    refused = owner.patch(f"/api/v1/grains/{gid}/access/{from_bob['id']}",
                          json={"role": EDITOR})
    assert refused.status_code == 403
    assert "bob@example.org" in refused.json()["error"]["message"]
    listed = {a["id"]: a for a in owner.get(f"/api/v1/grains/{gid}/access").json()}
    assert listed[from_bob["id"]]["role"] == VIEWER
    # Once Bob is an editor, it can be.
    owner.patch(f"/api/v1/grains/{gid}/access/{bobs['id']}", json={"role": EDITOR})
    raised = owner.patch(f"/api/v1/grains/{gid}/access/{from_bob['id']}",
                         json={"role": EDITOR})
    assert raised.status_code == 200 and raised.json()["permissions"] == ["write"]


def test_an_expired_link_behaves_like_a_revoked_one(grain_server):
    """Sessions (a person's and an anonymous one) and API tokens derived from an
    expiring link stop within a second of the expiry, with a message saying when."""
    gs = grain_server
    owner, _ = _person(gs, "ann@example.org", "Ann")
    gid = owner.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    expires, at = _expiring_in(3.0)
    link = _share(owner, gid, EDITOR, "for a while", expires=expires)
    assert link["expires_at"] is not None and link["expired"] is False
    kept = _share(owner, gid, VIEWER, "for good")
    assert kept["expires_at"] is None
    bob, _ = _person(gs, "bob@example.org", "Bob")
    _accept(bob, link["url"])
    bob_view = _open(gs, bob, gid)
    anonymous_view = _open_anonymously(gs, link["url"])
    assert _seen(bob_view)["x-sandstorm-permissions"] == "write"
    assert _seen(anonymous_view)["x-sandstorm-permissions"] == "write"
    token = bob.post(f"/api/v1/grains/{gid}/api-tokens", json={"role": EDITOR}).json()
    api = gs.browser("http://api.localhost:6080")
    auth = {"Authorization": f"Bearer {token['token']}"}
    assert api.get("/", headers=auth).status_code == 200
    # A re-share hangs from the link: it expires with it, and says so.
    from_bob = _share(bob, gid, VIEWER, "bob's")
    assert from_bob["expires_at"] == link["expires_at"]
    carol, _ = _person(gs, "carol@example.org", "Carol")
    _accept(carol, from_bob["url"])
    carol_view = _open(gs, carol, gid)

    refused = _refused_within(lambda: bob_view.get("/"), at)
    assert refused.status_code == 403 and "This sharing link expired on" in refused.text
    for view in (anonymous_view, carol_view):
        assert _refused_within(lambda v=view: v.get("/"), at).status_code == 403
    denied = _refused_within(lambda: api.get("/", headers=auth), at)
    assert denied.status_code == 401 and "expired on" in denied.text
    # Opening the link again is a clear page; the grain left Bob's and Carol's lists.
    page = gs.browser().get(link["url"].removeprefix(BASE))
    assert page.status_code == 410 and "This sharing link expired on" in page.text
    assert bob.post(link["url"].removeprefix(BASE)).status_code == 410
    assert bob.get("/api/v1/grains?shared=true").json() == []
    assert bob.post(f"/api/v1/grains/{gid}/sessions").status_code == 404
    assert carol.get("/api/v1/grains?shared=true").json() == []
    listed = {a["id"]: a for a in owner.get(f"/api/v1/grains/{gid}/access").json()}
    assert listed[link["id"]]["expired"] is True and listed[link["id"]]["permissions"] == []
    assert listed[kept["id"]]["expired"] is False
    page = gs.browser()
    login_as(page, gs.services, "ann@example.org", "Ann")
    table = page.get(f"/grains/{gid}").text.split('aria-label="Who has access"', 1)[1]
    row = table.split("for a while", 1)[1].split("</tr>", 1)[0]
    assert "<strong>expired</strong>" in row and " UTC</td>" in row
    # The link that never expires still works; a new grant gives Bob new credentials,
    # never the old ones back (once the server acted on the expiry, as it does at once).
    def acted_on() -> bool:
        upto = gs.services.shares.expired_upto
        return upto is not None and upto.replace(tzinfo=UTC).timestamp() >= at

    deadline = time.monotonic() + 5
    while not acted_on():
        assert time.monotonic() < deadline, "the expiry was not acted on"
        time.sleep(0.01)
    _accept(bob, kept["url"])
    assert _seen(bob_view) == 403 and api.get("/", headers=auth).status_code == 401
    assert _seen(_open(gs, bob, gid))["x-sandstorm-permissions"] == ""
