"""Sharing links and grants: bad input is refused with a clear status and changes
nothing; the admin can turn anonymous access off."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from sandhaven.testing import csrf_from, login_code, login_link, mail_text
from tests.conftest import BASE, bearer, form_post, login_as


def _grain(gs) -> str:  # type: ignore[no-untyped-def]
    bearer(gs.client, gs.services, "ann@example.org", "Ann")
    made = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"})
    return made.json()["id"]


def test_bad_roles_are_refused_and_nothing_is_made(grain_server):
    gs = grain_server
    gid = _grain(gs)
    for role, status in ((2, 400), (-1, 400), (10**6, 400), ("1", 422), (True, 422)):
        answer = gs.client.post(f"/api/v1/grains/{gid}/shares", json={"role": role})
        assert answer.status_code == status, (role, answer.text)
        assert answer.json()["error"]["message"].count("\n") == 0
    assert gs.client.post(f"/api/v1/grains/{gid}/shares", json={"label": "x"}
                          ).status_code == 422
    assert gs.client.get(f"/api/v1/grains/{gid}/access").json() == []
    link = gs.client.post(f"/api/v1/grains/{gid}/shares", json={"role": 1}).json()
    bad = gs.client.patch(f"/api/v1/grains/{gid}/access/{link['id']}", json={"role": 7})
    assert bad.status_code == 400 and "role" in bad.json()["error"]["message"]
    assert gs.client.get(f"/api/v1/grains/{gid}/access").json()[0]["role"] == 1
    assert gs.client.delete(f"/api/v1/grains/{gid}/access/999").status_code == 404


def test_forged_truncated_and_revoked_links_get_a_clear_page(grain_server):
    gs = grain_server
    gid = _grain(gs)
    link = gs.client.post(f"/api/v1/grains/{gid}/shares", json={"role": 1}).json()
    path = link["url"].removeprefix(BASE)
    visitor = gs.browser()
    assert visitor.get(path).status_code == 200
    for bad in (path[:-4], "/shared/" + "A" * 43, "/shared/" + "x" * 500):
        page = visitor.get(bad)
        assert page.status_code == 404 and "copied whole" in page.text, bad
    assert gs.client.delete(f"/api/v1/grains/{gid}/access/{link['id']}").status_code == 204
    page = visitor.get(path)
    assert page.status_code == 410 and "revoked" in page.text
    # Accepting a revoked link as a logged-in person gives nothing either.
    bob = gs.browser()
    bearer(bob, gs.services, "bob@example.org", "Bob")
    assert bob.post(path).status_code == 410
    assert bob.get("/api/v1/grains?shared=true").json() == []


def test_admin_can_turn_anonymous_access_off(grain_server):
    gs = grain_server
    gid = _grain(gs)
    link = gs.client.post(f"/api/v1/grains/{gid}/shares", json={"role": 0}).json()
    path = link["url"].removeprefix(BASE)
    assert gs.browser().get(path).status_code == 200
    session_url = gs.services.grain_sessions.open_anonymous(link["id"], gid).url
    origin = "/".join(session_url.split("/", 3)[:3])
    anonymous = gs.browser(origin)
    init = anonymous.get(session_url.removeprefix(origin))
    anonymous.cookies.set(*init.headers["set-cookie"].split(";", 1)[0].split("=", 1))
    assert anonymous.get("/").status_code == 200
    admin = gs.browser()
    login_as(admin, gs.services, "root@example.org", "Root", admin=True)
    saved = form_post(admin, "/admin/settings", "/admin/settings",
                      {"signup_policy": "invite", "sharing.anonymous": "false"})
    assert saved.status_code == 303, saved.text
    assert anonymous.get("/").status_code == 403  # the open anonymous session too, at once
    refused = gs.browser().get(path)
    assert refused.status_code == 303
    assert refused.headers["location"] == "/login?next=" + quote(path, safe="")
    # A logged-in person still gets the grain through the link.
    bob = gs.browser()
    login_as(bob, gs.services, "bob@example.org", "Bob")
    assert "Open as Bob" in bob.get(path).text
    accepted = form_post(bob, path, path, {})
    assert accepted.status_code == 303 and accepted.headers["location"] == f"/grains/{gid}"
    page = bob.get(f"/grains/{gid}")
    assert page.status_code == 200 and "shared with you" in page.text
    grains = bob.get("/grains")
    assert "Shared with me" in grains.text and f'href="/grains/{gid}"' in grains.text
    # The API turns it back on.
    api = gs.browser()
    bearer(api, gs.services, "root@example.org", "Root")
    turned = api.patch("/api/v1/admin/settings", json={"sharing_anonymous": True})
    assert turned.status_code == 200 and turned.json()["sharing_anonymous"] is True
    assert gs.browser().get(path).status_code == 200


def test_share_dialog_shows_the_link_once_and_lists_who_has_access(grain_server):
    gs = grain_server
    gid = _grain(gs)
    owner = gs.browser()
    login_as(owner, gs.services, "ann@example.org", "Ann")
    made = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/shares",
                     {"role": "1", "label": "for the team"})
    assert made.status_code == 200 and f"{BASE}/shared/" in made.text
    again = owner.get(f"/grains/{gid}")
    assert "/shared/" not in again.text and "for the team" in again.text
    share_id = gs.client.get(f"/api/v1/grains/{gid}/access").json()[0]["id"]
    changed = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/access/{share_id}",
                        {"role": "0", "action": "role"})
    assert changed.status_code == 303
    assert gs.client.get(f"/api/v1/grains/{gid}/access").json()[0]["role"] == 0
    wrong = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/shares", {"role": "x"})
    assert wrong.status_code == 400
    revoked = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/access/{share_id}",
                        {"action": "revoke"})
    assert revoked.status_code == 303
    assert gs.client.get(f"/api/v1/grains/{gid}/access").json() == []
    gs.services.identity.users.create("bob@example.org", "Bob")
    invited = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/invite",
                        {"email": "bob@example.org", "role": "1", "message": "hi"})
    assert invited.status_code == 303 and invited.headers["location"].endswith("done=shared")
    assert "Bob" in owner.get(f"/grains/{gid}").text
    nobody = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/invite",
                       {"email": "nobody@example.org", "role": "1"})
    assert nobody.status_code == 502 and "not configured" in nobody.text


def test_obsolete_roles_are_not_offered_to_new_shares(grain_server):
    from sandhaven.errors import InvalidInput
    from sandhaven.grains.access import Access
    from sandhaven.grains.shares import Shares

    gs = grain_server
    gid = _grain(gs)
    manifest = gs.services.grains.package_manifest(gs.services.grains.view(gid).package_id)
    roles = [manifest.roles[0], manifest.roles[1].model_copy(update={"obsolete": True})]
    old = manifest.model_copy(update={"roles": roles})
    owner = Access(gid, "someone", True, ("write",))
    Shares._check_role(old, owner, 0)
    with pytest.raises(InvalidInput, match="obsolete"):
        Shares._check_role(old, owner, 1)


def test_invitations_by_address(grain_server, smtp):
    gs = grain_server
    port, mailbox = smtp
    gid = _grain(gs)
    bob = gs.browser()
    bob_id = bearer(bob, gs.services, "bob@example.org", "Bob")
    # Without outgoing mail, a user of this server still gets the grant; a stranger
    # cannot be told, so nothing is made for them.
    made = gs.client.post(f"/api/v1/grains/{gid}/shares",
                          json={"email": "Bob@Example.org", "role": 1})
    assert made.status_code == 201, made.text
    assert made.json()["url"] is None and made.json()["recipient"]["id"] == bob_id
    assert [g["id"] for g in bob.get("/api/v1/grains?shared=true").json()] == [gid]
    stranger = gs.client.post(f"/api/v1/grains/{gid}/shares",
                              json={"email": "new@example.org", "role": 1})
    assert stranger.status_code == 502 and "mail" in stranger.json()["error"]["message"]
    for bad, status in (("not an address", 400), ("ann@example.org", 400), ("", 400),
                        ("x@" + "a" * 400, 422)):
        refused = gs.client.post(f"/api/v1/grains/{gid}/shares", json={"email": bad, "role": 1})
        assert refused.status_code == status, (bad, refused.text)
    assert len(gs.client.get(f"/api/v1/grains/{gid}/access").json()) == 1
    # With outgoing mail: the stranger gets a link of their own, which the sharer
    # never sees; it works like any link.
    gs.services.runtime.save({"smtp.host": "127.0.0.1", "smtp.port": port})
    invited = gs.client.post(f"/api/v1/grains/{gid}/shares", json={
        "email": "new@example.org", "role": 0, "message": "Have a look"})
    assert invited.status_code == 201 and invited.json()["url"] is None
    text = mail_text(mailbox.wait_for(1)[0])
    assert "Ann shared \"N\" with you" in text and "Have a look" in text
    link = re.search(r"(http://\S+/shared/\S+)", text)
    assert link is not None
    assert gs.browser().get(link.group(1).removeprefix(BASE)).status_code == 200
    labels = [a["label"] for a in gs.client.get(f"/api/v1/grains/{gid}/access").json()]
    assert labels == ["bob@example.org", "new@example.org"]
    # A user of this server is told where the grain is.
    gs.services.identity.users.create("carol@example.org", "Carol")
    assert gs.client.post(f"/api/v1/grains/{gid}/shares", json={
        "email": "carol@example.org", "role": 1}).status_code == 201
    assert f"{BASE}/grains/{gid}" in mail_text(mailbox.wait_for(2)[1])
    # Bob, a viewer, cannot invite anyone as an editor.
    wider = bob.post(f"/api/v1/grains/{gid}/shares", json={"email": "c@example.org", "role": 0})
    assert wider.status_code == 403
    assert len(mailbox.messages) == 2


def test_inviting_someone_again_updates_their_share(grain_server, smtp):
    gs = grain_server
    port, mailbox = smtp
    gid = _grain(gs)
    bob = gs.browser()
    bearer(bob, gs.services, "bob@example.org", "Bob")
    for role in (0, 1):
        made = gs.client.post(f"/api/v1/grains/{gid}/shares",
                              json={"email": "bob@example.org", "role": role})
        assert made.status_code == 201, made.text
    listed = gs.client.get(f"/api/v1/grains/{gid}/access").json()
    assert [(a["label"], a["role"]) for a in listed] == [("bob@example.org", 1)]
    assert listed[0]["id"] == made.json()["id"]
    assert gs.client.delete(f"/api/v1/grains/{gid}/access/{made.json()['id']}"
                            ).status_code == 204
    assert bob.get("/api/v1/grains?shared=true").json() == []  # revoked is revoked

    # Someone without an account: one share, and the newest mail's link is the one.
    gs.services.runtime.save({"smtp.host": "127.0.0.1", "smtp.port": port})
    for n, (role, message) in enumerate(((0, "first"), (1, "second")), start=1):
        assert gs.client.post(f"/api/v1/grains/{gid}/shares", json={
            "email": "new@example.org", "role": role, "message": message}).status_code == 201
        text = mail_text(mailbox.wait_for(n)[n - 1])
        assert message in text
    listed = [a for a in gs.client.get(f"/api/v1/grains/{gid}/access").json()
              if a["label"] == "new@example.org"]
    assert [(a["kind"], a["role"]) for a in listed] == [("link", 1)]
    link = re.search(r"(http://\S+/shared/\S+)", text)
    assert link is not None
    assert gs.browser().get(link.group(1).removeprefix(BASE)).status_code == 200

    # They take it with a new account; inviting them again changes the same grant.
    newcomer = gs.browser()
    newcomer_id = bearer(newcomer, gs.services, "new@example.org", "Newcomer")
    newcomer.post(link.group(1).removeprefix(BASE))
    assert gs.client.post(f"/api/v1/grains/{gid}/shares", json={
        "email": "new@example.org", "role": 0}).status_code == 201
    listed = [a for a in gs.client.get(f"/api/v1/grains/{gid}/access").json()
              if a["label"] == "new@example.org"]
    assert [(a["kind"], a["role"], (a["recipient"] or {}).get("id")) for a in listed] == [
        ("link", 0, None), ("person", 0, newcomer_id)]
    assert newcomer.get(f"/api/v1/grains/{gid}").status_code == 200


def test_logging_in_from_a_link_comes_back_to_it(grain_server, smtp):
    gs = grain_server
    port, mailbox = smtp
    gid = _grain(gs)
    path = gs.client.post(f"/api/v1/grains/{gid}/shares", json={"role": 1}).json()["url"]
    path = path.removeprefix(BASE)
    gs.services.runtime.save({"smtp.host": "127.0.0.1", "smtp.port": port,
                              "sharing.anonymous": False})
    gs.services.identity.users.create("bob@example.org", "Bob")
    visitor = gs.browser()
    login = visitor.get(visitor.get(path).headers["location"])
    assert f'name="next" value="{path}"' in login.text
    assert f'href="/login/code?next={path}"' in login.text
    # Only a sharing link of this server is a place to come back to.
    for bad in ("https://evil.example/shared/x", "//evil.example/shared/x", "/grains",
                "/shared/x/../../admin", "/shared/"):
        assert 'name="next"' not in visitor.get("/login", params={"next": bad}).text, bad

    # The mailed link carries it through to the verify page, and back.
    asked = form_post(visitor, f"/login?next={quote(path)}", "/login",
                      {"email": "bob@example.org", "next": path})
    assert asked.status_code == 200 and f'value="{path}"' in asked.text
    msg = mailbox.wait_for(1)[0]
    link = login_link(msg)
    assert link.endswith(f"&next={path}")
    verify = visitor.get(link.removeprefix(BASE))
    assert f'name="next" value="{path}"' in verify.text
    token = link.split("token=", 1)[1].split("&", 1)[0]
    back = visitor.post("/login/verify", data={"csrf_token": csrf_from(verify.text),
                                               "token": token, "next": path})
    assert back.status_code == 303 and back.headers["location"] == path
    assert "Open as Bob" in visitor.get(path).text

    # So does the code, and a next that is not a sharing link is ignored.
    coder = gs.browser()
    form_post(coder, "/login", "/login", {"email": "bob@example.org", "next": path})
    code = login_code(mailbox.wait_for(2)[1])
    back = form_post(coder, f"/login/code?next={quote(path)}", "/login/code",
                     {"email": "bob@example.org", "code": code, "next": path})
    assert back.status_code == 303 and back.headers["location"] == path
    other = gs.browser()
    form_post(other, "/login", "/login", {"email": "bob@example.org"})
    code = login_code(mailbox.wait_for(3)[2])
    away = form_post(other, "/login/code", "/login/code", {
        "email": "bob@example.org", "code": code, "next": "https://evil.example/"})
    assert away.status_code == 303 and away.headers["location"] == "/grains"

    # Logged in, the choice page no longer offers anonymous use; asking for it
    # anyway gets a clear answer, not a login.
    assert 'href="?anonymous=1"' not in visitor.get(path).text
    anonymous = visitor.get(path + "?anonymous=1")
    assert anonymous.status_code == 403 and "Anonymous use is off" in anonymous.text
    assert f'href="{path}"' in anonymous.text
