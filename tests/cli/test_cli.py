"""The command line's errors are one line with the right exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def sandhaven(*args: str, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "sandhaven", *args], capture_output=True,
                          text=True, timeout=60, **kw)


def test_admin_commands_refuse_a_data_dir_without_a_store(tmp_path: Path):
    for args in (["user", "add", "a@example.org", "--name", "A"],
                 ["token", "create", "a@example.org"], ["admin-token"]):
        result = sandhaven("--data-dir", str(tmp_path / "typo"), *args)
        assert result.returncode == 3, args
        assert "No Sandhaven store" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "typo").exists()


def test_data_dir_that_is_a_file_is_one_line(tmp_path: Path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = sandhaven("serve", "--data-dir", str(afile))
    assert result.returncode == 2
    assert "Setting 'data_dir'" in result.stderr and "not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_database_urls_are_one_line(tmp_path: Path):
    for url, needle in (("nonsense", "not a database URL"),
                        ("postgresql://u:pw@127.0.0.1/db", "driver")):
        # An external database is outside the encrypted private area: only with
        # encryption off (see the next test for the refusal with it on).
        result = sandhaven("serve", "--data-dir", str(tmp_path), "--database-url", url,
                           env={**os.environ, "SANDHAVEN_STORAGE_ENCRYPTION": "false"})
        assert result.returncode == 3, result.stderr
        assert needle in result.stderr and "Traceback" not in result.stderr
        assert "pw@" not in result.stderr


def test_an_external_database_with_encryption_on_is_refused_in_one_line(tmp_path: Path):
    result = sandhaven("serve", "--data-dir", str(tmp_path), "--database-url",
                       "postgresql://u:pw@127.0.0.1/db")
    assert result.returncode == 5 and "Traceback" not in result.stderr
    assert result.stderr.startswith("sandhaven: Setting 'database_url' is set: an external "
                                    "database is not in the encrypted private area")
    assert result.stderr.count("\n") == 1 and "pw@" not in result.stderr


def test_output_into_a_closed_pipe_is_quiet(tmp_path: Path):
    result = subprocess.run(f"{sys.executable} -m sandhaven config sample | head -1",
                            shell=True, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr and result.stdout.startswith("#")


def test_config_check_reports_effective_settings(tmp_path: Path):
    result = sandhaven("--data-dir", str(tmp_path), "config", "check")
    assert result.returncode == 0 and '"port": 6080' in result.stdout
