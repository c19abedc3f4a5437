"""Asking for access: the same answer whatever the grain, rate-limited; the owner
grants a role or dismisses."""

from __future__ import annotations

from sandhaven.testing import mail_text
from tests.conftest import bearer, form_post, login_as


def test_asking_granting_and_dismissing(grain_server, smtp):
    gs = grain_server
    port, mailbox = smtp
    gs.services.runtime.save({"smtp.host": "127.0.0.1", "smtp.port": port})
    bearer(gs.client, gs.services, "ann@example.org", "Ann")
    gid = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    bob = gs.browser()
    bob_id = bearer(bob, gs.services, "bob@example.org", "Bob")
    asked = bob.post(f"/api/v1/grains/{gid}/access-requests", json={"message": "please"})
    assert asked.status_code == 202 and asked.json() == {"status": "sent"}
    # A grain that does not exist gets the same answer, and nothing happens.
    assert bob.post("/api/v1/grains/nosuchgrain/access-requests", json={}).json() == asked.json()
    text = mail_text(mailbox.wait_for(1)[0])
    assert "Bob (bob@example.org) asks for access" in text and "please" in text
    assert len(mailbox.messages) == 1
    pending = gs.client.get(f"/api/v1/grains/{gid}/access-requests").json()
    assert [(p["user"]["id"], p["message"]) for p in pending] == [(bob_id, "please")]
    assert bob.get(f"/api/v1/grains/{gid}/access-requests").status_code == 404
    bad = gs.client.post(f"/api/v1/grains/{gid}/access-requests/{pending[0]['id']}/grant",
                         json={"role": 5})
    assert bad.status_code == 400
    granted = gs.client.post(f"/api/v1/grains/{gid}/access-requests/{pending[0]['id']}/grant",
                             json={"role": 1})
    assert granted.status_code == 201 and granted.json()["recipient"]["id"] == bob_id
    assert [g["id"] for g in bob.get("/api/v1/grains?shared=true").json()] == [gid]
    assert gs.client.get(f"/api/v1/grains/{gid}/access-requests").json() == []
    # Bob, who has access now, cannot answer requests; a second asker is dismissed.
    carol = gs.browser()
    bearer(carol, gs.services, "carol@example.org", "Carol")
    carol.post(f"/api/v1/grains/{gid}/access-requests", json={})
    rid = gs.client.get(f"/api/v1/grains/{gid}/access-requests").json()[0]["id"]
    assert bob.delete(f"/api/v1/grains/{gid}/access-requests/{rid}").status_code == 403
    assert gs.client.delete(f"/api/v1/grains/{gid}/access-requests/{rid}").status_code == 204
    assert gs.client.delete(f"/api/v1/grains/{gid}/access-requests/{rid}").status_code == 404
    assert carol.get("/api/v1/grains?shared=true").json() == []


def test_asking_is_rate_limited(grain_server):
    gs = grain_server
    bearer(gs.client, gs.services, "ann@example.org", "Ann")
    gid = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    bob = gs.browser()
    bearer(bob, gs.services, "bob@example.org", "Bob")
    for _ in range(3):
        assert bob.post(f"/api/v1/grains/{gid}/access-requests", json={}).status_code == 202
    limited = bob.post(f"/api/v1/grains/{gid}/access-requests", json={})
    assert limited.status_code == 429 and "access requests" in limited.json()["error"]["message"]
    assert len(gs.client.get(f"/api/v1/grains/{gid}/access-requests").json()) == 1


def test_request_page_and_answer_in_the_shell(grain_server):
    gs = grain_server
    owner = gs.client
    gid = gs.services.grains.create(login_as(owner, gs.services, "ann@example.org", "Ann"),
                                    gs.app_id, 0, "N").id
    bob = gs.browser()
    login_as(bob, gs.services, "bob@example.org", "Bob")
    page = bob.get(f"/grains/{gid}")
    assert page.status_code == 404 and "Ask for access" in page.text
    assert bob.get("/grains/nosuchgrain").text.count("Ask for access") == 1
    sent = form_post(bob, f"/grains/{gid}", f"/grains/{gid}/request-access", {"message": "hi"})
    assert sent.status_code == 200 and "Access requested" in sent.text
    shown = owner.get(f"/grains/{gid}")
    assert "Asking for access" in shown.text and "bob@example.org" in shown.text
    rid = gs.services.access_requests.pending(
        gs.services.identity.users.find_by_email("ann@example.org").id, gid)[0].id
    answered = form_post(owner, f"/grains/{gid}", f"/grains/{gid}/access-requests/{rid}",
                         {"action": "grant", "role": "0"})
    assert answered.status_code == 303
    assert bob.get(f"/grains/{gid}").status_code == 200


def test_granting_someone_who_has_access_by_now_updates_their_one_share(grain_server):
    from tests.conftest import BASE

    gs = grain_server
    owner_id = bearer(gs.client, gs.services, "ann@example.org", "Ann")
    gid = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    bob, carol = gs.browser(), gs.browser()
    bob_id = bearer(bob, gs.services, "bob@example.org", "Bob")
    carol_id = bearer(carol, gs.services, "carol@example.org", "Carol")
    for asker in (bob, carol):
        assert asker.post(f"/api/v1/grains/{gid}/access-requests", json={}).status_code == 202
    requests = {r["user"]["id"]: r["id"]
                for r in gs.client.get(f"/api/v1/grains/{gid}/access-requests").json()}

    def people() -> list[tuple[str, int, str, int | None]]:
        return [(a["recipient"]["id"], a["role"], a["created_by"]["id"], a["parent_id"])
                for a in gs.client.get(f"/api/v1/grains/{gid}/access").json()
                if a["kind"] == "person"]

    # Bob took a viewer link meanwhile; granting him editor raises that one share,
    # which is now the owner's own grant to him (revoking the link no longer cuts
    # him off).
    link = gs.client.post(f"/api/v1/grains/{gid}/shares", json={"role": 1}).json()
    assert bob.post(link["url"].removeprefix(BASE)).status_code == 303
    granted = gs.client.post(
        f"/api/v1/grains/{gid}/access-requests/{requests[bob_id]}/grant", json={"role": 0})
    assert granted.status_code == 201, granted.text
    assert (granted.json()["role"], granted.json()["permissions"]) == (0, ["write"])
    assert people() == [(bob_id, 0, owner_id, None)]
    assert gs.services.grain_sessions.access(bob_id, gid).permissions == ("write",)
    assert gs.client.delete(f"/api/v1/grains/{gid}/access/{link['id']}").status_code == 204
    assert gs.services.grain_sessions.access(bob_id, gid).permissions == ("write",)

    # Carol was invited as an editor meanwhile; granting her viewer keeps what she
    # holds: a grant answering a request never takes anything away.
    gs.client.post(f"/api/v1/grains/{gid}/shares",
                   json={"email": "carol@example.org", "role": 0})
    kept = gs.client.post(
        f"/api/v1/grains/{gid}/access-requests/{requests[carol_id]}/grant", json={"role": 1})
    assert kept.status_code == 201 and kept.json()["role"] == 0
    assert sorted(people()) == sorted([(bob_id, 0, owner_id, None),
                                       (carol_id, 0, owner_id, None)])
    assert gs.client.get(f"/api/v1/grains/{gid}/access-requests").json() == []
