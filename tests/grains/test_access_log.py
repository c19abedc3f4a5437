"""Each grain's access log: a row per session opened and per API token per hour,
read by the owner (filters, CSV) and by each person for their own activity."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sandhaven.store import utcnow
from sandhaven.store.models import AccessLogEntry
from tests.conftest import BASE, bearer


def test_access_log_rows_for_each_way_in(grain_server):
    gs = grain_server
    owner_id = bearer(gs.client, gs.services, "ann@example.org", "Ann")
    gid = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    assert gs.client.post(f"/api/v1/grains/{gid}/sessions",
                          headers={"User-Agent": "ann-browser"}).status_code == 201
    link = gs.client.post(f"/api/v1/grains/{gid}/shares",
                          json={"role": 1, "label": "readers"}).json()
    bob = gs.browser()
    bob_id = bearer(bob, gs.services, "bob@example.org", "Bob")
    assert bob.post(link["url"].removeprefix(BASE)).status_code == 303
    assert bob.post(f"/api/v1/grains/{gid}/sessions").status_code == 201
    assert gs.browser().get(link["url"].removeprefix(BASE)).status_code == 200  # anonymous
    token = gs.client.post(f"/api/v1/grains/{gid}/api-tokens",
                           json={"role": 0, "label": "sync"}).json()
    api = gs.browser("http://api.localhost:6080")
    for _ in range(3):  # one row per token per hour, not per request
        assert api.get("/", headers={"Authorization": f"Bearer {token['token']}"}
                       ).status_code == 200

    rows = gs.client.get(f"/api/v1/grains/{gid}/access-log").json()
    seen = [(r["via"], r["user_id"], r["user_name"], r["label"], r["role"], r["permissions"])
            for r in reversed(rows)]
    assert seen == [
        ("owner", owner_id, "Ann", "", None, ["write"]),
        ("share", bob_id, "Bob", "readers", 1, []),
        ("link", None, "Anonymous User", "readers", 1, []),
        ("token", owner_id, "Ann", "sync", 0, ["write"]),
    ]
    assert rows[-1]["user_agent"] == "ann-browser" and rows[-1]["client_ip"]
    assert len(rows[-1]["identity_id"]) == 32 and rows[1]["identity_id"] is None

    # Filters, CSV, and who may read what.
    only_bob = gs.client.get(f"/api/v1/grains/{gid}/access-log", params={"person": bob_id})
    assert [r["via"] for r in only_bob.json()] == ["share"]
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    assert gs.client.get(f"/api/v1/grains/{gid}/access-log",
                         params={"since": tomorrow}).json() == []
    assert gs.client.get(f"/api/v1/grains/{gid}/access-log",
                         params={"since": "yesterday"}).status_code == 422
    assert gs.client.get(f"/api/v1/grains/{gid}/access-log",
                         params={"format": "xml"}).status_code == 400
    exported = gs.client.get(f"/api/v1/grains/{gid}/access-log", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(exported.text)))
    assert table[0][:3] == ["at", "grain_id", "grain_title"] and len(table) == 5
    assert table[0][-3:] == ["role_title", "share_id", "token_id"]
    assert table[1][-1] == str(token["id"]) and table[1][-2] == ""
    assert bob.get(f"/api/v1/grains/{gid}/access-log").status_code == 403
    assert [r["via"] for r in bob.get("/api/v1/me/activity").json()] == ["share"]
    stranger = gs.browser()
    bearer(stranger, gs.services, "eve@example.org", "Eve")
    assert stranger.get(f"/api/v1/grains/{gid}/access-log").status_code == 404


def test_csv_cells_cannot_run_as_formulas(grain_server):
    from sandhaven.grains.access_log import LogRow, to_csv

    row = LogRow(at=utcnow(), grain_id="g", grain_title="=HYPERLINK(\"x\")", user_id=None,
                 user_name="Anonymous User", identity_id=None, via="link", label="+1",
                 role=None, permissions=(), client_ip="", user_agent="@evil")
    cells = list(csv.reader(io.StringIO(to_csv([row]))))[1]
    assert cells[2].startswith("'=") and cells[7] == "'+1" and cells[11] == "'@evil"


def test_old_rows_are_pruned_and_go_with_their_grain(grain_server):
    gs = grain_server
    bearer(gs.client, gs.services, "ann@example.org", "Ann")
    gid = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "N"}).json()["id"]
    gs.client.post(f"/api/v1/grains/{gid}/sessions")
    gs.client.post(f"/api/v1/grains/{gid}/sessions")
    with gs.services.store.session() as s:
        first = s.query(AccessLogEntry).order_by(AccessLogEntry.id).first()
        first.at = utcnow() - timedelta(days=366)
    assert gs.services.access_log.prune() == 1
    assert len(gs.client.get(f"/api/v1/grains/{gid}/access-log").json()) == 1
    gs.client.delete(f"/api/v1/grains/{gid}")
    assert gs.client.delete(f"/api/v1/grains/{gid}", params={"forever": "true"}
                            ).status_code == 204
    with gs.services.store.read() as s:
        assert s.query(AccessLogEntry).count() == 0


def test_access_log_page(grain_server):
    from tests.conftest import login_as

    gs = grain_server
    gid = gs.services.grains.create(
        login_as(gs.client, gs.services, "ann@example.org", "Ann"), gs.app_id, 0, "N").id
    assert 'href="/grains/' + gid + '/access-log"' in gs.client.get(f"/grains/{gid}").text
    ann_id = gs.services.identity.users.find_by_email("ann@example.org").id
    link, _ = gs.services.shares.create_link(ann_id, gid, 1, "readers")
    gs.services.grain_sessions.open_anonymous(link.id, gid)
    page = gs.client.get(f"/grains/{gid}/access-log")
    assert page.status_code == 200 and "owner" in page.text and "Ann" in page.text
    assert "viewer <span class=\"muted\">— no permissions" in page.text
    assert "owner <span class=\"muted\">— write" in page.text
    assert "format=csv" in page.text
    assert gs.client.get(f"/grains/{gid}/access-log", params={"since": "2026-13-01"}
                         ).status_code == 400
    empty = gs.client.get(f"/grains/{gid}/access-log", params={"until": "2000-01-01"})
    assert "Nobody opened" in empty.text


def test_people_see_their_own_activity_and_no_title_once_access_is_gone(grain_server):
    from tests.conftest import login_as

    gs = grain_server
    bearer(gs.client, gs.services, "ann@example.org", "Ann")
    gid = gs.client.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "Plan"}
                         ).json()["id"]
    link = gs.client.post(f"/api/v1/grains/{gid}/shares",
                          json={"role": 1, "label": "readers"}).json()
    bob = gs.browser()
    bob_id = bearer(bob, gs.services, "bob@example.org", "Bob")
    own = bob.post("/api/v1/grains", json={"app_id": gs.app_id, "title": "Bob's"}).json()["id"]
    assert bob.post(f"/api/v1/grains/{own}/sessions").status_code == 201
    assert bob.post(link["url"].removeprefix(BASE)).status_code == 303
    assert bob.post(f"/api/v1/grains/{gid}/sessions",
                    headers={"User-Agent": "bobs-browser"}).status_code == 201
    # Opened anonymously, even by Bob, is not his: nothing ties it to him.
    assert gs.browser().get(link["url"].removeprefix(BASE)).status_code == 200
    assert gs.client.post(f"/api/v1/grains/{gid}/sessions").status_code == 201  # Ann's

    mine = bob.get("/api/v1/me/activity").json()
    assert [(r["grain_id"], r["grain_title"], r["via"], r["label"], r["role"],
             r["role_title"], r["user_id"]) for r in mine] == [
        (gid, "Plan", "share", "readers", 1, "viewer", bob_id),
        (own, "Bob's", "owner", "", None, "", bob_id)]
    assert mine[0]["user_agent"] == "bobs-browser" and mine[0]["client_ip"]
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    today = utcnow().date().isoformat()
    assert bob.get("/api/v1/me/activity", params={"since": tomorrow}).json() == []
    assert len(bob.get("/api/v1/me/activity", params={"since": today, "until": today}
                       ).json()) == 2
    assert bob.get("/api/v1/me/activity", params={"until": "2000-01-01"}).json() == []
    assert bob.get("/api/v1/me/activity", params={"since": "soon"}).status_code == 422

    page_client = gs.browser()
    login_as(page_client, gs.services, "bob@example.org", "Bob")
    page = page_client.get("/account/activity")
    assert page.status_code == 200
    table = page.text.split('aria-label="Your activity"', 1)[1]
    assert f'<a href="/grains/{gid}">Plan</a>' in table and "“readers”" in table
    assert "viewer" in table and "bobs-browser" in table
    assert "Ann" not in table  # only his own rows
    assert "You opened no grain" in page_client.get(
        "/account/activity", params={"since": tomorrow}).text
    bad = page_client.get("/account/activity", params={"since": "31.12.2026"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    assert 'href="/account/activity"' in page_client.get("/account").text

    # The owner renames the grain, then revokes Bob's link: his rows stay, without
    # the title (old or new), which is no longer his to see.
    gs.client.patch(f"/api/v1/grains/{gid}", json={"title": "Secret plan"})
    assert gs.client.delete(f"/api/v1/grains/{gid}/access/{link['id']}").status_code == 204
    after = bob.get("/api/v1/me/activity").json()
    assert [(r["grain_id"], r["grain_title"]) for r in after] == [(gid, ""), (own, "Bob's")]
    shown = page_client.get("/account/activity").text
    assert "no longer shared with you" in shown and "Plan" not in shown
    assert f'href="/grains/{gid}"' not in shown
