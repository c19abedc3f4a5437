"""The PHP recipes refuse, with one clear line, to build or start on a machine
lacking the Debian packages they are made from."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sandhaven.packages.keys import SigningKey, write_key_file

APPS = Path(__file__).parents[2] / "apps"


@pytest.mark.parametrize(("recipe", "package"), [
    ("dokuwiki", "dokuwiki"), ("wordpress", "wordpress")])
def test_build_refuses_another_version_of_the_debian_package(recipe, package, tmp_path):
    # A dpkg-query that reports another installed version.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dpkg-query").write_text("#!/bin/sh\necho -n 1.0-other\n")
    os.chmod(fake / "dpkg-query", 0o755)
    write_key_file(SigningKey.generate(), tmp_path / "k.key")
    done = subprocess.run(
        ["bash", str(APPS / recipe / "build.sh"), str(tmp_path / "k.key"),
         str(tmp_path / "out.spk"), str(tmp_path / "build")],
        capture_output=True, text=True, timeout=60,
        env={"PATH": f"{fake}:/usr/bin:/bin", "SANDHAVEN": "/bin/false"})
    assert done.returncode == 1
    assert done.stderr.startswith(f"build.sh: needs Debian's {package} ")
    assert "(found: 1.0-other)" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "out.spk").exists() and not (tmp_path / "build" / "tree").exists()


def test_the_mediawiki_launcher_refuses_to_start_without_mediawiki_1_39(tmp_path):
    done = subprocess.run(["/bin/sh", str(APPS / "mediawiki" / "launcher.sh")],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "MEDIAWIKI_DIR": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr == ("launcher: needs Debian 12's mediawiki (1.39.x) on the server; "
                           "found: none\n")
