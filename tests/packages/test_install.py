import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from sandhaven.errors import Conflict, InvalidInput, NotFound, NotNewer, PackageInUse
from sandhaven.packages.install import (
    install_package,
    list_installed_apps,
    package_file,
    uninstall_package,
)
from sandhaven.packages.testing import HELLO_SOURCE, build_hello, hello_source, set_app_fields
from sandhaven.store import Store, utcnow
from sandhaven.store.models import App, Grain, Package, User
from sandhaven.testing import make_data_dir


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_install_makes_a_read_only_content_addressed_tree(store, packages_dir, hello_spk, key):
    result = install_package(store, packages_dir, hello_spk)
    assert result.created and result.app_id == key.app_id and result.version == 1
    assert result.as_json() == {"app_id": key.app_id, "package_id": result.package_id,
                                "version": 1, "title": "Hello"}
    tree = packages_dir / result.package_id
    assert _tree(tree) == ["icons", "icons/hello.svg", "server.py"]
    assert (tree / "server.py").read_bytes() == (HELLO_SOURCE / "server.py").read_bytes()
    modes = {p: stat.S_IMODE((tree / p).stat().st_mode)
             for p in ("", "icons", "icons/hello.svg", "server.py")}
    assert modes == {"": 0o555, "icons": 0o555, "icons/hello.svg": 0o444, "server.py": 0o555}
    with store.session() as s:
        row = s.get(Package, result.package_id)
        assert (row.app_id, row.version, row.marketing_version, row.title) == \
            (key.app_id, 1, "1.0.0", "Hello")
        assert row.manifest["app"]["port"] == 8000
        assert row.size_bytes == sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        assert s.get(App, key.app_id).title == "Hello"
    assert [p.name for p in packages_dir.iterdir() if p.name.startswith(".install")] == []


def test_installing_the_same_file_twice_is_a_no_op(store, packages_dir, hello_spk):
    first = install_package(store, packages_dir, hello_spk)
    inode = (packages_dir / first.package_id).stat().st_ino
    second = install_package(store, packages_dir, hello_spk)
    assert not second.created and second.package_id == first.package_id
    assert (packages_dir / first.package_id).stat().st_ino == inode


def test_newer_version_installs_beside_the_old(tmp_path, store, packages_dir, key):
    v1 = install_package(store, packages_dir, build_hello(tmp_path, key, name="v1"))
    v2 = install_package(store, packages_dir, build_hello(
        tmp_path, key, name="v2", version=2, marketing_version="2.0"))
    assert v2.created and (packages_dir / v1.package_id).is_dir()
    [app] = list_installed_apps(store)
    assert (app.package_id, app.version, app.marketing_version) == (v2.package_id, 2, "2.0")
    assert app.versions == (v2.package_id, v1.package_id)
    assert app.icon_path == "icons/hello.svg"


@pytest.mark.parametrize("version", [1, 2])
def test_lower_or_equal_version_is_refused(tmp_path, store, packages_dir, key, version):
    install_package(store, packages_dir, build_hello(tmp_path, key, name="v2", version=2,
                                                     marketing_version="2"))
    other = build_hello(tmp_path, key, name="old", version=version, marketing_version="x")
    with pytest.raises(NotNewer, match=f"already has version 2 installed.*version {version} "
                                       "is not newer"):
        install_package(store, packages_dir, other)
    with store.session() as s:
        assert len(s.scalars(select(Package)).all()) == 1
    assert len([p for p in packages_dir.iterdir() if not p.name.startswith(".")]) == 1
    assert [p.name for p in packages_dir.iterdir() if p.name.startswith(".install")] == []


def test_higher_version_by_another_key_is_another_app(tmp_path, store, packages_dir, key,
                                                      other_key):
    mine = install_package(store, packages_dir, build_hello(tmp_path, key, name="mine"))
    theirs = install_package(store, packages_dir,
                             build_hello(tmp_path, other_key, name="theirs", version=9))
    assert theirs.app_id != mine.app_id
    apps = {a.app_id: a for a in list_installed_apps(store)}
    assert apps[mine.app_id].version == 1 and apps[mine.app_id].versions == (mine.package_id,)


def test_update_may_not_remove_a_permission(tmp_path, store, packages_dir, key):
    install_package(store, packages_dir, build_hello(tmp_path, key, name="v1"))
    src = hello_source(tmp_path / "v2-src")
    set_app_fields(src, version=2)
    text = (src / "sandhaven-pkgdef.toml").read_text()
    text = text.replace('name = "write"', 'name = "edit"').replace('["write"]', '["edit"]')
    (src / "sandhaven-pkgdef.toml").write_text(text)
    from sandhaven.packages.pack import pack
    pack(src, key, tmp_path / "v2.spk")
    with pytest.raises(Conflict, match="permission 0 \\('write'\\) was removed"):
        install_package(store, packages_dir, tmp_path / "v2.spk")


def test_concurrent_installs_of_same_and_different_packages(tmp_path, store, packages_dir,
                                                            key, other_key):
    spks = [build_hello(tmp_path, key, name="a"), build_hello(tmp_path, other_key, name="b")]
    jobs = [spks[i % 2] for i in range(8)]
    barrier = threading.Barrier(len(jobs))
    results, errors = [], []

    def run(path):
        barrier.wait()
        try:
            results.append(install_package(store, packages_dir, path))
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.created for r in results) == 2
    assert len({r.package_id for r in results}) == 2
    assert sorted(p.name for p in packages_dir.iterdir()) == \
        sorted([".lock", *{r.package_id for r in results}])


def test_concurrent_installs_from_two_processes(tmp_path, hello_spk):
    data_dir = tmp_path / "data"
    # A server's store exists before anyone installs; create it first.
    make_data_dir(data_dir)
    cmd = [sys.executable, "-m", "sandhaven", "--data-dir", str(data_dir), "install",
           str(hello_spk)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDHAVEN_")}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert sum(out.split()[1] == "installed:" for out, _ in outs) == 1
    assert sum("already installed" in out for out, _ in outs) == 2


def test_orphan_tree_without_a_row_is_replaced(store, packages_dir, hello_spk):
    result = install_package(store, packages_dir, hello_spk)
    with store.session() as s:
        s.delete(s.get(Package, result.package_id))
    os.chmod(packages_dir / result.package_id, 0o755)
    (packages_dir / result.package_id / "server.py").chmod(0o644)
    (packages_dir / result.package_id / "server.py").write_text("tampered")
    again = install_package(store, packages_dir, hello_spk)
    assert again.created
    assert (packages_dir / result.package_id / "server.py").read_bytes() == \
        (HELLO_SOURCE / "server.py").read_bytes()


def _add_grain(store, app_id, package_id, grain_id="g" * 22):
    with store.session() as s:
        if s.get(User, "u1") is None:
            s.add(User(id="u1", email="u1@example.org", name="U", created_at=utcnow()))
            s.flush()
        s.add(Grain(id=grain_id, owner_id="u1", app_id=app_id, package_id=package_id,
                    title="note", created_at=utcnow()))


def test_uninstall_refuses_while_grains_use_the_package(store, packages_dir, hello_spk):
    result = install_package(store, packages_dir, hello_spk)
    _add_grain(store, result.app_id, result.package_id)
    with pytest.raises(PackageInUse, match="used by grains " + "g" * 22):
        uninstall_package(store, packages_dir, result.package_id)
    assert (packages_dir / result.package_id / "server.py").is_file()
    assert not (packages_dir / f".uninstall-{result.package_id}").exists()


def test_uninstall_removes_tree_and_rows(tmp_path, store, packages_dir, key):
    v1 = install_package(store, packages_dir, build_hello(tmp_path, key, name="v1"))
    v2 = install_package(store, packages_dir, build_hello(tmp_path, key, name="v2", version=2))
    uninstall_package(store, packages_dir, v1.package_id)
    assert not (packages_dir / v1.package_id).exists()
    assert [a.versions for a in list_installed_apps(store)] == [(v2.package_id,)]
    uninstall_package(store, packages_dir, v2.package_id)
    assert sorted(p.name for p in packages_dir.iterdir()) == [".lock"]
    with store.session() as s:
        assert s.get(App, key.app_id) is None
    with pytest.raises(NotFound, match="not installed"):
        uninstall_package(store, packages_dir, v2.package_id)
    with pytest.raises(InvalidInput, match="not a package ID"):
        uninstall_package(store, packages_dir, "../../etc")


def test_package_file_stays_inside_the_tree(store, packages_dir, hello_spk):
    pid = install_package(store, packages_dir, hello_spk).package_id
    assert package_file(packages_dir, pid, "icons/hello.svg") == \
        packages_dir / pid / "icons" / "hello.svg"
    assert package_file(packages_dir, pid, "../../etc/passwd") is None
    assert package_file(packages_dir, pid, "icons") is None
    assert package_file(packages_dir, pid, "missing.svg") is None
    assert package_file(packages_dir, "0" * 32, "server.py") is None


def test_install_and_uninstall_as_an_unprivileged_user(tmp_path, hello_spk):
    """Root ignores permission bits; run the CLI as 'nobody' so the read-only tree
    is handled the way a normal server account sees it (the suite runs as root)."""
    assert os.geteuid() == 0, "the test suite runs as root"
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as shared:  # pytest's tmp_path is private to root
        os.chmod(shared, 0o777)
        spk = Path(shared) / "hello.spk"
        shutil.copy(hello_spk, spk)
        os.chmod(spk, 0o644)
        data = Path(shared) / "data"
        # Plaintext storage: FUSE mounts as 'nobody' are not what this test is about.
        Store.open(f"sqlite:///{data / 'sandhaven.sqlite3'}").close()
        for path in (data, *data.iterdir()):
            os.chown(path, 65534, 65534)
        _as_nobody(data, spk)


def _as_nobody(data, spk):  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(data), "SANDHAVEN_STORAGE_ENCRYPTION": "false"}

    def run(*args):  # type: ignore[no-untyped-def]
        return subprocess.run([sys.executable, "-m", "sandhaven", "--data-dir", str(data),
                               *args], capture_output=True, text=True, env=env, timeout=120,
                              user=65534, group=65534)

    installed = run("install", str(spk))
    assert installed.returncode == 0, installed.stderr
    package_id = installed.stdout.split()[0]
    tree = data / "packages" / package_id
    assert stat.S_IMODE(tree.stat().st_mode) == 0o555
    removed = run("uninstall", package_id)
    assert removed.returncode == 0, removed.stderr
    assert not tree.exists()
