"""The Apps page: upload form, listing, icons, uninstall — with real packages."""

import pytest

from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.testing import csrf_from
from tests.conftest import login_as


def _upload(client, data, filename="hello.spk"):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/apps").text)
    return client.post(f"/apps/upload?csrf_token={token}",
                       files={"package": (filename, data, "application/octet-stream")})


def test_admin_uploads_and_sees_the_app(make_shell, tmp_path):
    services, client = make_shell()
    login_as(client, services, "root@example.org", "Root", admin=True)
    key = SigningKey.generate()
    spk = build_hello(tmp_path, key).read_bytes()
    answer = _upload(client, spk)
    assert answer.status_code == 303 and answer.headers["location"] == "/apps?done=installed"
    page = client.get("/apps?done=installed").text
    assert "App package installed." in page
    assert "Hello" in page and "1.0.0" in page and "Tiny note" in page
    assert "New note" in page and "/var/note.txt" in page  # action and description
    [app] = services.packages.apps()
    assert f'src="/apps/{app.package_id}/icon"' in page and key.app_id in page
    icon = client.get(f"/apps/{app.package_id}/icon")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    policies = icon.headers.get_list("content-security-policy")
    assert len(policies) == 2 and any(p.endswith("; sandbox") for p in policies)
    assert icon.text.startswith("<svg")
    again = _upload(client, spk)
    assert again.headers["location"] == "/apps?done=already-installed"


def test_bad_upload_shows_the_reason_and_leaves_nothing(make_shell, tmp_path):
    services, client = make_shell()
    login_as(client, services, "root@example.org", "Root", admin=True)
    data = bytearray(build_hello(tmp_path, SigningKey.generate()).read_bytes())
    data[-3] ^= 0xFF
    answer = _upload(client, bytes(data), "evil.spk")
    assert answer.status_code == 400
    assert "evil.spk: The package signature does not verify" in answer.text
    assert services.packages.apps() == []
    assert [p.name for p in services.packages.packages_dir.iterdir()] in ([], [".lock"])
    empty = _upload(client, b"", "")
    assert empty.status_code in (400, 422)


def test_uninstall_from_the_page(make_shell, tmp_path):
    services, client = make_shell()
    login_as(client, services, "root@example.org", "Root", admin=True)
    result = services.packages.install(build_hello(tmp_path, SigningKey.generate()))
    token = csrf_from(client.get("/apps").text)
    answer = client.post(f"/apps/{result.package_id}/uninstall", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/apps?done=uninstalled"
    assert services.packages.apps() == []
    missing = client.post(f"/apps/{result.package_id}/uninstall", data={"csrf_token": token})
    assert missing.status_code == 404 and "not installed" in missing.text


@pytest.mark.parametrize("action", ["/apps/upload", "/apps/" + "0" * 32 + "/uninstall"])
def test_users_cannot_install_or_uninstall(make_shell, action):
    services, client = make_shell()
    login_as(client, services, "u@example.org", "User")
    page = client.get("/apps").text
    assert "Install an app package" not in page
    answer = client.post(f"{action}?csrf_token={csrf_from(page)}",
                         data={"csrf_token": csrf_from(page)})
    assert answer.status_code == 403


def test_icon_of_unknown_package_is_404(make_shell):
    services, client = make_shell()
    login_as(client, services, "u@example.org", "User")
    assert client.get("/apps/" + "0" * 32 + "/icon").status_code == 404
    assert client.get("/apps/..%2F..%2Fetc/icon").status_code == 404
