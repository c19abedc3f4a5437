"""The permission matrix through the real gateway: a header-echo app (Hello with
three roles: editor ``write,comment``, commenter ``comment``, viewer nothing) in a
real grain, reached by the owner, a direct share, a link taken by a person, an
anonymous link, a re-share and an API token. Each step asserts what the app is
told (``X-Sandstorm-Permissions``), what it lets through, and the access-log rows
the step wrote (none for role changes and refusals: rows are written per opening)."""

from __future__ import annotations

import pytest

from sandhaven.packages.keys import SigningKey
from sandhaven.packages.manifest import PKGDEF_NAME
from sandhaven.packages.pack import pack
from sandhaven.packages.testing import hello_source
from tests.conftest import BASE
from tests.gateway.test_sharing import (
    _accept,
    _Log,
    _open,
    _open_anonymously,
    _person,
    _seen,
    _share,
)

EDITOR, COMMENTER, VIEWER = 0, 1, 2
ROLES = '''
[[permissions]]
name = "write"
title = "write"
description = "Change the note."

[[permissions]]
name = "comment"
title = "comment"
description = "Comment on the note."

[[roles]]
title = "editor"
verb_phrase = "can edit"
description = "Editors change and comment."
permissions = ["write", "comment"]
default = true

[[roles]]
title = "commenter"
verb_phrase = "can comment"
description = "Commenters comment."
permissions = ["comment"]

[[roles]]
title = "viewer"
verb_phrase = "can view"
description = "Viewers read."
permissions = []
'''


@pytest.fixture
def three_roles(grain_server, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """Install Hello with the three roles above; returns its app ID."""
    src = hello_source(tmp_path / "hello3")
    pkgdef = (src / PKGDEF_NAME).read_text(encoding="utf-8")
    start, end = pkgdef.index("[[permissions]]"), pkgdef.index("[metadata]")
    (src / PKGDEF_NAME).write_text(pkgdef[:start] + ROLES.lstrip() + "\n" + pkgdef[end:],
                                   encoding="utf-8")
    out = tmp_path / "hello3.spk"
    pack(src, SigningKey.generate(), out)
    return grain_server.services.packages.install(out).app_id


def _permissions(view) -> str | int:  # type: ignore[no-untyped-def]
    seen = _seen(view)
    return seen if isinstance(seen, int) else seen["x-sandstorm-permissions"]


def test_permission_matrix_with_three_roles(grain_server, three_roles):
    gs = grain_server
    ann, _ = _person(gs, "ann@example.org", "Ann")
    gid = ann.post("/api/v1/grains", json={"app_id": three_roles, "title": "M"}).json()["id"]
    log = _Log(ann, gid)
    bob, _ = _person(gs, "bob@example.org", "Bob")
    carol, carol_id = _person(gs, "carol@example.org", "Carol")
    dave, _ = _person(gs, "dave@example.org", "Dave")

    # The owner holds every permission.
    ann_view = _open(gs, ann, gid)
    ann_seen = _seen(ann_view)
    assert ann_seen["x-sandstorm-permissions"] == "write,comment"
    assert ann_view.post("/", content="by Ann").status_code == 200
    assert log.new() == [("owner", "Ann", "", None, ["write", "comment"],
                          ann_seen["x-sandstorm-user-id"])]
    assert (log.rows[0]["share_id"], log.rows[0]["token_id"]) == (None, None)

    # A role index beyond the manifest's is refused, nothing made.
    assert ann.post(f"/api/v1/grains/{gid}/shares", json={"role": 3}).status_code == 400
    assert ann.get(f"/api/v1/grains/{gid}/access").json() == []

    # A direct share (invitation by address): commenter.
    invited = ann.post(f"/api/v1/grains/{gid}/shares",
                       json={"email": "bob@example.org", "role": COMMENTER})
    assert invited.status_code == 201, invited.text
    bob_view = _open(gs, bob, gid)
    bob_seen = _seen(bob_view)
    assert bob_seen["x-sandstorm-permissions"] == "comment"
    assert bob_view.post("/", content="by Bob").status_code == 403  # no write
    assert log.new() == [("share", "Bob", "bob@example.org", COMMENTER, ["comment"],
                          bob_seen["x-sandstorm-user-id"])]
    assert log.rows[0]["share_id"] == invited.json()["id"]

    # A link share taken by a person: viewer.
    readers = _share(ann, gid, VIEWER, "readers")
    _accept(carol, readers["url"])
    carol_view = _open(gs, carol, gid)
    carol_seen = _seen(carol_view)
    assert carol_seen["x-sandstorm-permissions"] == ""
    assert carol_view.post("/", content="by Carol").status_code == 403
    assert log.new() == [("share", "Carol", "readers", VIEWER, [],
                          carol_seen["x-sandstorm-user-id"])]
    carols = {a["id"]: a for a in ann.get(f"/api/v1/grains/{gid}/access").json()}
    assert carols[log.rows[0]["share_id"]]["parent_id"] == readers["id"]  # taken from it

    # Anonymous use of an editor link.
    team = _share(ann, gid, EDITOR, "team")
    anonymous_view = _open_anonymously(gs, team["url"])
    anonymous_seen = _seen(anonymous_view)
    assert anonymous_seen["x-sandstorm-permissions"] == "write,comment"
    assert "x-sandstorm-user-id" not in anonymous_seen
    assert anonymous_view.post("/", content="by someone").status_code == 200
    assert log.new() == [("link", "Anonymous User", "team", EDITOR, ["write", "comment"],
                          None)]
    assert log.rows[0]["share_id"] == team["id"]

    # Re-sharing with a wider role than one holds is refused (link or address), and
    # nothing is made; within it, the re-share grants the intersection.
    before = bob.get(f"/api/v1/grains/{gid}/access").json()
    for body in ({"role": EDITOR}, {"role": EDITOR, "email": "dave@example.org"}):
        wider = bob.post(f"/api/v1/grains/{gid}/shares", json=body)
        assert wider.status_code == 403 and "write" in wider.json()["error"]["message"]
    assert bob.get(f"/api/v1/grains/{gid}/access").json() == before == []
    from_bob = _share(bob, gid, COMMENTER, "from bob")
    _accept(dave, from_bob["url"])
    dave_view = _open(gs, dave, gid)
    dave_seen = _seen(dave_view)
    assert dave_seen["x-sandstorm-permissions"] == "comment"
    assert log.new() == [("share", "Dave", "from bob", COMMENTER, ["comment"],
                          dave_seen["x-sandstorm-user-id"])]

    # A role change reaches open sessions on their next request, down the chain.
    bobs = next(a for a in ann.get(f"/api/v1/grains/{gid}/access").json()
                if a["label"] == "bob@example.org")
    assert ann.patch(f"/api/v1/grains/{gid}/access/{bobs['id']}",
                     json={"role": VIEWER}).status_code == 200
    assert _permissions(bob_view) == "" and _permissions(dave_view) == ""
    listed = {a["id"]: a for a in ann.get(f"/api/v1/grains/{gid}/access").json()}
    assert (listed[from_bob["id"]]["role_title"], listed[from_bob["id"]]["permissions"]) == (
        "commenter", [])
    assert ann.patch(f"/api/v1/grains/{gid}/access/{bobs['id']}",
                     json={"role": COMMENTER}).status_code == 200
    assert _permissions(bob_view) == "comment" and _permissions(dave_view) == "comment"
    assert log.new() == []

    # An API token: one row per token per hour, whatever the number of requests.
    token = bob.post(f"/api/v1/grains/{gid}/api-tokens",
                     json={"role": COMMENTER, "label": "bob's script"}).json()
    api = gs.browser("http://api.localhost:6080")
    auth = {"Authorization": f"Bearer {token['token']}"}
    for _ in range(3):
        headers = {k.lower(): v for k, v in api.get("/", headers=auth).json()["headers"].items()}
        assert headers["x-sandstorm-permissions"] == "comment"
    assert log.new() == [("token", "Bob", "bob's script", COMMENTER, ["comment"],
                          bob_seen["x-sandstorm-user-id"])]
    assert log.rows[0]["token_id"] == token["id"]

    # Revoking the middle link cuts off what hangs from it, at once; not its maker.
    assert ann.delete(f"/api/v1/grains/{gid}/access/{from_bob['id']}").status_code == 204
    assert _permissions(dave_view) == 403
    assert _permissions(bob_view) == "comment"
    assert dave.post(f"/api/v1/grains/{gid}/sessions").status_code == 404

    # A suspended user loses all access: sessions, tokens, new sessions.
    carol_token = carol.post(f"/api/v1/grains/{gid}/api-tokens",
                             json={"role": VIEWER}).json()
    carol_auth = {"Authorization": f"Bearer {carol_token['token']}"}
    assert api.get("/", headers=carol_auth).status_code == 200
    assert log.new() == [("token", "Carol", "API token", VIEWER, [],
                          carol_seen["x-sandstorm-user-id"])]
    users = gs.services.identity.users
    admin = users.create("root@example.org", "Root", is_admin=True)
    users.set_suspended(admin.id, carol_id, True)
    assert _permissions(carol_view) == 403
    assert api.get("/", headers=carol_auth).status_code == 401
    assert carol.post(f"/api/v1/grains/{gid}/sessions").status_code == 401
    assert gs.browser().get(readers["url"].removeprefix(BASE)).status_code == 200  # not hers
    # Refusals wrote nothing; the anonymous visit just now wrote its row.
    assert log.new() == [("link", "Anonymous User", "readers", VIEWER, [], None)]
