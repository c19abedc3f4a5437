"""storage.encryption = false: development only, loud in the log and on every admin page."""

from __future__ import annotations

from starlette.testclient import TestClient
from structlog.testing import capture_logs

from sandhaven.config import load_settings
from sandhaven.encryption import open_storage
from sandhaven.server import build_app
from sandhaven.services import Services
from tests.conftest import BASE, login_as

BANNER = "Encryption at rest is off"


def shell(tmp_path, encryption: bool):  # type: ignore[no-untyped-def]
    settings = load_settings(environ={}, overrides={
        "data_dir": str(tmp_path / f"data-{encryption}"),
        "storage.encryption": "true" if encryption else "false"})
    services = Services.build(settings)
    return services, TestClient(build_app(services), base_url=BASE, follow_redirects=False)


def test_plaintext_mode_warns_at_start_and_shows_admins_a_banner(tmp_path):
    settings = load_settings(environ={}, overrides={"data_dir": str(tmp_path / "d"),
                                                    "storage.encryption": "false"})
    with capture_logs() as logs, open_storage(settings) as storage:
        assert storage.volumes is None and not storage.encrypted
    assert [e["log_level"] for e in logs if e["event"] == "encryption_off"] == ["warning"]

    services, client = shell(tmp_path, encryption=False)
    try:
        login_as(client, services, "root@example.org", "Root", admin=True)
        for page in ("/admin", "/admin/settings", "/grains", "/apps"):
            answer = client.get(page)
            assert answer.status_code == 200 and BANNER in answer.text, page
        other = TestClient(client.app, base_url=BASE, follow_redirects=False)
        login_as(other, services, "user@example.org", "User")
        assert BANNER not in other.get("/grains").text
    finally:
        services.store.close()


def test_no_banner_with_encryption_on(tmp_path):
    services, client = shell(tmp_path, encryption=True)
    try:
        login_as(client, services, "root@example.org", "Root", admin=True)
        assert BANNER not in client.get("/admin").text
    finally:
        services.store.close()
