"""POST/DELETE /api/v1/packages and GET /api/v1/apps with real packages."""

import pytest

from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello


def _bearer(services, email="root@example.org", admin=True):  # type: ignore[no-untyped-def]
    user = services.identity.users.create(email, "Root", is_admin=admin)
    _, token = services.identity.tokens.create(user.id, "test")
    return {"Authorization": f"Bearer {token}"}


def _leftovers(services):  # type: ignore[no-untyped-def]
    d = services.packages.packages_dir
    return sorted(p.name for p in d.iterdir() if p.name != ".lock") if d.exists() else []


def test_install_list_uninstall(make_shell, tmp_path):
    services, client = make_shell()
    auth = _bearer(services)
    key = SigningKey.generate()
    spk = build_hello(tmp_path, key).read_bytes()
    answer = client.post("/api/v1/packages", content=spk,
                         headers={**auth, "Content-Type": "application/octet-stream"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body == {"app_id": key.app_id, "package_id": body["package_id"], "version": 1,
                    "title": "Hello"}
    again = client.post("/api/v1/packages", content=spk, headers=auth)
    assert (again.status_code, again.json()) == (200, body)
    apps = client.get("/api/v1/apps", headers=auth).json()
    assert apps == [{"app_id": key.app_id, "package_id": body["package_id"], "title": "Hello",
                     "version": 1, "marketing_version": "1.0.0",
                     "short_description": "Tiny note", "actions": ["note"],
                     "package_ids": [body["package_id"]]}]
    assert client.delete(f"/api/v1/packages/{body['package_id']}",
                         headers=auth).status_code == 204
    assert client.get("/api/v1/apps", headers=auth).json() == []
    gone = client.delete(f"/api/v1/packages/{body['package_id']}", headers=auth)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("mutate", "status", "code"), [
    (lambda d: b"", 400, "package_format"),
    (lambda d: b"not a package at all", 400, "package_format"),
    (lambda d: d[:-10], 400, "package_format"),
    (lambda d: d[:300] + bytes([d[300] ^ 1]) + d[301:], 400, "package_signature"),
])
def test_bad_packages_are_4xx_and_leave_nothing(make_shell, tmp_path, mutate, status, code):
    services, client = make_shell()
    auth = _bearer(services)
    data = mutate(build_hello(tmp_path, SigningKey.generate()).read_bytes())
    answer = client.post("/api/v1/packages", content=data, headers=auth)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert "\n" not in answer.json()["error"]["message"]
    assert _leftovers(services) == []
    assert client.get("/api/v1/apps", headers=auth).json() == []


def test_downgrade_is_409(make_shell, tmp_path):
    services, client = make_shell()
    auth = _bearer(services)
    key = SigningKey.generate()
    v2 = build_hello(tmp_path, key, name="v2", version=2).read_bytes()
    v1 = build_hello(tmp_path, key, name="v1").read_bytes()
    assert client.post("/api/v1/packages", content=v2, headers=auth).status_code == 201
    refused = client.post("/api/v1/packages", content=v1, headers=auth)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_newer"
    assert len(_leftovers(services)) == 1


def test_upload_past_the_limit_is_413(make_shell, tmp_path):
    services, client = make_shell(**{"packages.max_spk_bytes": 2048})
    auth = _bearer(services)
    answer = client.post("/api/v1/packages", content=b"x" * 4096, headers=auth)
    assert answer.status_code == 413
    assert _leftovers(services) == []


def test_only_admins_install_and_uninstall(make_shell, tmp_path):
    services, client = make_shell()
    auth = _bearer(services, "user@example.org", admin=False)
    spk = build_hello(tmp_path, SigningKey.generate()).read_bytes()
    assert client.post("/api/v1/packages", content=spk, headers=auth).status_code == 403
    assert client.delete("/api/v1/packages/" + "0" * 32, headers=auth).status_code == 403
    assert client.get("/api/v1/apps", headers=auth).status_code == 200
    assert client.post("/api/v1/packages", content=spk).status_code == 401


def test_openapi_describes_the_package_routes(make_shell):
    _, client = make_shell()
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {"post"} <= set(paths["/packages"]) and "delete" in paths["/packages/{package_id}"]
    assert "application/octet-stream" in paths["/packages"]["post"]["requestBody"]["content"]


def test_uninstall_of_a_package_in_use_is_409_naming_the_grain(make_shell, tmp_path):
    from sandhaven.store import utcnow
    from sandhaven.store.models import Grain, User

    services, client = make_shell()
    auth = _bearer(services)
    result = services.packages.install(build_hello(tmp_path, SigningKey.generate()))
    with services.store.session() as s:
        owner = s.query(User).first()
        s.add(Grain(id="G" * 22, owner_id=owner.id, app_id=result.app_id,
                    package_id=result.package_id, title="note", created_at=utcnow()))
    answer = client.delete(f"/api/v1/packages/{result.package_id}", headers=auth)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "package_in_use"
    assert "G" * 22 in answer.json()["error"]["message"]
    assert (services.packages.packages_dir / result.package_id).is_dir()
