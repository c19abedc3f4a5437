"""Against a real ``sandhaven serve`` in a subprocess on a free port."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from sandhaven.testing import (
    csrf_from,
    free_port,
    login_code,
    login_link,
    start_server,
    stop_server,
)


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandhaven", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    live = start_server(tmp_path / "data")
    yield live
    stop_server(live)


def test_first_admin_setup_then_the_setup_path_is_gone(server):
    url = server.setup_url()
    assert "within 15 minutes" in "".join(server.stdout_lines)
    path = url.removeprefix(server.url)
    with server.client(follow_redirects=False) as c:
        page = c.get(path)
        assert page.status_code == 200 and "Create admin account" in page.text
        done = c.post(path, data={"csrf_token": csrf_from(page.text), "name": "Root",
                                  "email": "root@example.org"})
        assert done.status_code == 303 and done.headers["location"].startswith("/admin")
        me = c.get("/api/v1/me").json()
        assert me["is_admin"] is True and me["email"] == "root@example.org"
    with server.client() as fresh:
        replay = fresh.get(path)
        assert replay.status_code == 404 and "no longer exists" in replay.text
        page = fresh.get("/login")
        forged = fresh.post(path, data={"csrf_token": csrf_from(page.text), "name": "Eve",
                                        "email": "eve@example.org"})
        assert forged.status_code == 404
    result = run_cli("admin-token", data_dir=server.data_dir)
    assert result.returncode != 0 and "already has users" in result.stderr


def test_expired_setup_url_is_refused_and_admin_token_gives_a_fresh_one(server):
    path = server.setup_url().removeprefix(server.url)
    # The store, in the private area the running server has mounted.
    db = sqlite3.connect(server.data_dir / "private" / "sandhaven.sqlite3")
    db.execute("UPDATE setup_tokens SET expires_at = created_at")
    db.commit()
    db.close()
    with server.client() as c:
        answer = c.get(path)
        assert answer.status_code == 410 and "expired" in answer.text
        assert "15 minutes" in answer.text
    result = run_cli("admin-token", data_dir=server.data_dir)
    assert result.returncode == 0 and "within 15 minutes" in result.stdout
    fresh = urlsplit(result.stdout.split()[-1]).path
    with server.client() as c:
        assert c.get(fresh).status_code == 200


def test_second_serve_on_the_same_data_dir_is_refused(server):
    proc = subprocess.run(
        [sys.executable, "-m", "sandhaven", "serve", "--data-dir", str(server.data_dir),
         "--port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert f"PID {server.process.pid}" in proc.stderr and "already using" in proc.stderr
    assert proc.stderr.count("\n") == 1
    with server.client() as c:
        assert c.get("/login").status_code == 200


def test_user_add_and_token_create_while_serving(server):
    added = run_cli("user", "add", "ops@example.org", "--name", "Ops", "--admin",
                    data_dir=server.data_dir)
    assert added.returncode == 0, added.stderr
    token = run_cli("token", "create", "ops@example.org", data_dir=server.data_dir)
    assert token.returncode == 0
    secret = token.stdout.strip()
    with server.client() as c:
        me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()
    assert me["email"] == "ops@example.org" and me["is_admin"] is True
    dup = run_cli("user", "add", "OPS@example.org", "--name", "Ops", data_dir=server.data_dir)
    assert dup.returncode == 2 and "already exists" in dup.stderr
    bad = run_cli("user", "add", "nope", "--name", "X", data_dir=server.data_dir)
    assert bad.returncode == 2 and "not a valid email address" in bad.stderr
    missing = run_cli("token", "create", "who@example.org", data_dir=server.data_dir)
    assert missing.returncode == 2 and "No user" in missing.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown_on_signal(tmp_path: Path, sig):
    live = start_server(tmp_path / "data")
    live.process.send_signal(sig)
    assert live.process.wait(timeout=20) == 0
    stop_server(live)
    err = live.stderr
    assert '"event": "stopped"' in err and "Traceback" not in err
    # The lock is released: a new serve starts on the same data dir.
    again = start_server(tmp_path / "data")
    assert stop_server(again) == 0


@pytest.mark.parametrize(("args", "needle"), [
    (["--port", "x"], "Setting 'port' has value 'x'"),
    (["--signup-policy", "all"], "Setting 'signup_policy'"),
])
def test_bad_settings_stop_serve_with_one_line(tmp_path: Path, args, needle):
    proc = subprocess.run([sys.executable, "-m", "sandhaven", "serve", "--data-dir",
                           str(tmp_path), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert needle in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "sandhaven.sqlite3").exists()
    assert not (tmp_path / "private.cipher").exists()


def test_bad_environment_and_config_file_stop_serve(tmp_path: Path):
    import os

    env = {**os.environ, "SANDHAVEN_SMTP_PORT": "smtp"}
    proc = subprocess.run([sys.executable, "-m", "sandhaven", "serve", "--data-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "Setting 'smtp.port' has value 'smtp'" in proc.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[smtp]\nhots = 'x'\n")
    proc = subprocess.run([sys.executable, "-m", "sandhaven", "--config", str(cfg), "serve",
                           "--data-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "unknown setting 'smtp.hots'" in proc.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        data = tmp_path / "data"
        proc = subprocess.run([sys.executable, "-m", "sandhaven", "serve", "--data-dir",
                               str(data), "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"sandhaven: Cannot listen on 127.0.0.1:{port} (Address already in use)."]
    assert proc.stdout == ""
    assert not data.exists()  # no keys, no private area, no store made first
    # The check scripts/serve.sh makes before it builds the catalog: the same line.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        check = subprocess.run([sys.executable, "-m", "sandhaven", "serve", "--data-dir",
                                str(data), "--port", str(port), "--check-listen"],
                               capture_output=True, text=True, timeout=60)
    assert check.returncode == 2 and "Cannot listen on" in check.stderr and not data.exists()
    free = subprocess.run([sys.executable, "-m", "sandhaven", "serve", "--data-dir", str(data),
                           "--port", str(port), "--check-listen"],
                          capture_output=True, text=True, timeout=60)
    assert free.returncode == 0 and not data.exists()


def test_email_login_on_a_live_server_and_logs_hold_no_secrets(tmp_path: Path, smtp):
    port, mailbox = smtp
    live = start_server(tmp_path / "data", env={"SANDHAVEN_SMTP_HOST": "127.0.0.1",
                                                "SANDHAVEN_SMTP_PORT": str(port)})
    try:
        added = run_cli("user", "add", "ana@example.org", "--name", "Ana",
                        data_dir=live.data_dir)
        assert added.returncode == 0
        with live.client(follow_redirects=False) as c:
            page = c.get("/login")
            c.post("/login", data={"csrf_token": csrf_from(page.text),
                                   "email": "ana@example.org"})
            msg = mailbox.wait_for(1)[0]
            link, code = login_link(msg), login_code(msg)
            token = link.split("token=")[1]
            verify = c.get(f"/login/verify?token={token}")
            done = c.post("/login/verify", data={"csrf_token": csrf_from(verify.text),
                                                 "token": token})
            assert done.status_code == 303
            cookie = done.cookies["sandhaven_session"]
            assert c.get("/api/v1/me").json()["email"] == "ana@example.org"
            fresh = csrf_from(c.get("/account").text)  # tokens are bound to the new session
            api_token = c.post("/api/v1/me/tokens", json={"label": "t"},
                               headers={"X-CSRF-Token": fresh}).json()["token"]
            c.get("/api/v1/me", headers={"Authorization": f"Bearer {api_token}"})
    finally:
        stop_server(live)
    logs = live.stderr
    assert '"path": "/login/verify"' in logs
    for secret in (token, code, code.replace("-", ""), cookie, api_token, setup_token(live)):
        assert secret not in logs


def setup_token(live) -> str:  # type: ignore[no-untyped-def]
    return live.setup_url().rsplit("/", 1)[1]


def test_dev_accounts_only_with_dev_flag(tmp_path: Path):
    plain = start_server(tmp_path / "a")
    try:
        with plain.client() as c:
            assert "Dev accounts" not in c.get("/login").text
    finally:
        stop_server(plain)
    dev = start_server(tmp_path / "b", "--dev")
    try:
        with dev.client(follow_redirects=False) as c:
            page = c.get("/login").text
            assert "Development mode" in page
            done = c.post("/dev/login", data={"csrf_token": csrf_from(page), "name": "Bob Dev"})
            assert done.status_code == 303
            assert c.get("/api/v1/me").json()["name"] == "Bob Dev"
            assert "Development mode" in c.get("/grains").text
    finally:
        stop_server(dev)


def test_unknown_host_is_404_on_the_live_server(server):
    answer = httpx.get(f"http://127.0.0.1:{server.port}/login",
                       headers={"Host": "evil.example"}, timeout=10)
    assert answer.status_code == 404


def test_racing_visitors_on_one_setup_url_make_exactly_one_admin(server):
    from concurrent.futures import ThreadPoolExecutor

    path = server.setup_url().removeprefix(server.url)
    clients = [server.client(follow_redirects=False) for _ in range(12)]
    tokens = [csrf_from(c.get(path).text) for c in clients]

    def post(i: int) -> int:
        return clients[i].post(path, data={"csrf_token": tokens[i], "name": f"Admin {i}",
                                           "email": f"admin{i}@example.org"}).status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(post, range(12)))
    for c in clients:
        c.close()
    assert statuses.count(303) == 1, statuses
    assert set(statuses) <= {303, 404, 410}
    db = sqlite3.connect(server.data_dir / "private" / "sandhaven.sqlite3")
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 1
    db.close()


@pytest.mark.parametrize("bad", [{"name": "", "email": "root@example.org"},
                                 {"name": "Root", "email": "root@localhost"},
                                 {"name": "Ro\x07ot", "email": "root@example.org"}])
def test_setup_form_errors_show_the_form_again(server, bad):
    path = server.setup_url().removeprefix(server.url)
    with server.client(follow_redirects=False) as c:
        page = c.get(path)
        answer = c.post(path, data={"csrf_token": csrf_from(page.text), **bad})
        assert answer.status_code == 400
        assert "Create admin account" in answer.text and "Traceback" not in answer.text
        good = c.post(path, data={"csrf_token": csrf_from(page.text), "name": "Root",
                                  "email": "root@example.org"})
        assert good.status_code == 303


def test_port_alone_moves_every_url(tmp_path: Path):
    """`serve --port N` serves and prints URLs on N without setting base_url too."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sandhaven", "serve", "--data-dir",
                             str(tmp_path / "d"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        assert f"http://localhost:{port}/setup/" in "".join(lines)
        assert httpx.get(f"http://127.0.0.1:{port}/login",
                         headers={"Host": f"localhost:{port}"}, timeout=10).status_code == 200
        fresh = run_cli("admin-token", data_dir=tmp_path / "d")
        assert f"http://localhost:{port}/setup/" in fresh.stdout
    finally:
        proc.terminate()
        proc.wait(20)
        proc.stdout.close()
