"""The packaging commands, run as a user runs them: real keys, real files, exit codes."""

import json
import stat
import subprocess
import sys

import pytest

from sandhaven.cli.main import main
from sandhaven.packages.keys import SigningKey, write_key_file
from sandhaven.packages.testing import HELLO_SOURCE, build_hello
from sandhaven.testing import make_data_dir

pytestmark = pytest.mark.usefixtures("clean_env")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_keygen_pack_verify_unpack(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "keygen", "-o", "app.key")
    app_id = out.strip()
    assert code == 0 and len(app_id) == 52 and err == ""
    assert stat.S_IMODE((tmp_path / "app.key").stat().st_mode) == 0o600

    code, out, _ = run(capsys, "pack", HELLO_SOURCE, "-k", "app.key", "-o", "hello.spk")
    package_id = out.strip()
    assert code == 0 and len(package_id) == 32
    code, again, _ = run(capsys, "pack", HELLO_SOURCE, "-k", "app.key", "-o", "again.spk")
    assert again.strip() == package_id  # reproducible

    code, out, _ = run(capsys, "verify", "hello.spk", "--json")
    assert code == 0
    assert json.loads(out) == {"app_id": app_id, "package_id": package_id, "title": "Hello",
                               "version": 1, "marketing_version": "1.0.0"}
    code, out, _ = run(capsys, "verify", "hello.spk")
    assert f"app_id: {app_id}" in out and "title: Hello" in out

    code, out, _ = run(capsys, "unpack", "hello.spk", "tree")
    assert code == 0 and (tmp_path / "tree" / "server.py").is_file()
    code, _, err = run(capsys, "unpack", "hello.spk", "tree")
    assert code == 2 and err.count("\n") == 1 and "not an empty directory" in err


def test_keygen_default_name_and_no_overwrite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "keygen")
    assert (tmp_path / f"{out.strip()}.key").is_file()
    (tmp_path / "taken.key").write_text("x")
    code, _, err = run(capsys, "keygen", "-o", "taken.key")
    assert code == 10 and err == "sandhaven: Key file taken.key already exists; not " \
                                 "overwriting it.\n"


@pytest.mark.parametrize(("mutate", "code", "fragment"), [
    (lambda d: b"GIF89a" + d[6:], 12, "wrong magic"),
    (lambda d: d[:-1], 12, "truncated"),
    (lambda d: d[:200] + bytes([d[200] ^ 1]) + d[201:], 13, "signature does not verify"),
])
def test_verify_exit_codes(tmp_path, capsys, mutate, code, fragment):
    spk = build_hello(tmp_path, SigningKey.generate())
    bad = tmp_path / "bad.spk"
    bad.write_bytes(mutate(spk.read_bytes()))
    got, out, err = run(capsys, "verify", bad)
    assert (got, out) == (code, "")
    assert err.startswith("sandhaven: ") and fragment in err and err.count("\n") == 1


def test_pack_errors(tmp_path, capsys):
    key = tmp_path / "app.key"
    write_key_file(SigningKey.generate(), key)
    code, _, err = run(capsys, "pack", tmp_path, "-k", key, "-o", tmp_path / "x.spk")
    assert code == 14 and "sandhaven-pkgdef.toml is missing" in err
    key.chmod(0o644)
    code, _, err = run(capsys, "pack", HELLO_SOURCE, "-k", key, "-o", tmp_path / "x.spk")
    assert code == 10 and "chmod 600" in err


def test_install_upgrade_downgrade_uninstall(tmp_path, capsys):
    key = SigningKey.generate()
    v1 = build_hello(tmp_path, key, name="v1")
    v2 = build_hello(tmp_path, key, name="v2", version=2)
    data = tmp_path / "data"
    code, _, err = run(capsys, "--data-dir", data, "install", v2)
    assert code == 3 and "No Sandhaven store" in err  # a mistyped --data-dir
    make_data_dir(data)
    capsys.readouterr()  # what it logged
    code, out, _ = run(capsys, "--data-dir", data, "install", v2)
    assert code == 0 and " installed: Hello version 2" in out
    package_id = out.split()[0]
    code, out, _ = run(capsys, "--data-dir", data, "install", v2)
    assert code == 0 and "already installed" in out
    code, _, err = run(capsys, "--data-dir", data, "install", v1)
    assert code == 17 and "not newer" in err
    code, out, _ = run(capsys, "install", "--data-dir", data, v1.with_name("missing.spk"))
    assert code == 12
    code, out, _ = run(capsys, "--data-dir", data, "uninstall", package_id)
    assert code == 0 and not (data / "packages" / package_id).exists()
    code, _, err = run(capsys, "--data-dir", data, "uninstall", package_id)
    assert code == 2 and "not installed" in err


def test_real_entry_point(tmp_path):
    spk = build_hello(tmp_path, SigningKey.generate())
    proc = subprocess.run([sys.executable, "-m", "sandhaven", "verify", "--json", str(spk)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["title"] == "Hello"
