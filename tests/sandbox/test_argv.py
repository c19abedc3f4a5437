"""The grain command line, read as a plain list without running anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandhaven.errors import SandboxError
from sandhaven.sandbox.argv import Host, build_argv
from sandhaven.sandbox.layout import HostPaths
from sandhaven.sandbox.native import Helpers
from sandhaven.sandbox.spec import GrainSpec, Limits, MiB

HELPERS = Helpers(spawn=Path("/lib/sh/sandhaven-spawn"), init=Path("/lib/sh/sandhaven-init"))
SPEC = GrainSpec(
    package_dir=Path("/data/packages/abc"),
    storage_dir=Path("/data/grains/g1"),
    command=("/opt/app/run", "--flag"),
    app_port=8000,
    env={"APP_MODE": "x"},
    limits=Limits(memory_bytes=64 * MiB, max_processes=32, tmp_bytes=4 * MiB),
)


def argv(grain_uid: int | None = 64999) -> list[str]:
    host = Host(
        helpers=HELPERS,
        paths=HostPaths(Path("/run/sh")),
        bwrap="/usr/bin/bwrap",
        grain_uid=grain_uid,
    )
    return build_argv(
        SPEC,
        "g1",
        host,
        cgroup_procs=[Path("/cg/memory/g1/cgroup.procs")],
        seccomp_fd=7,
        info_fd=8,
        app_listen_fd=9,
    )


def pairs(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == option]


def bwrap_part(args: list[str]) -> list[str]:
    start = args.index("/usr/bin/bwrap")
    return args[start : args.index("--seccomp") + 2]


def test_spawn_helper_joins_cgroups_limits_files_stages_and_drops_to_the_grain_uid() -> None:
    args = argv()
    helper = args[: args.index("--")]
    assert helper[0] == "/lib/sh/sandhaven-spawn"
    assert pairs(helper, "--cgroup") == ["/cg/memory/g1/cgroup.procs"]
    assert pairs(helper, "--nofile") == ["1024:4096"]
    assert pairs(helper, "--stage") == [
        "app=/data/packages/abc:ro",
        "var=/data/grains/g1",
        "api=/run/sh/grains/g1/api.sock:ro",
        "etc=/run/sh/etc:ro",
        "init=/lib/sh/sandhaven-init:ro",
    ]
    assert pairs(helper, "--uid") == ["64999"] and pairs(helper, "--gid") == ["64999"]
    assert args[args.index("--") + 1] == "/usr/bin/bwrap"


def test_every_namespace_is_new_and_no_more_can_be_made() -> None:
    b = bwrap_part(argv())
    for flag in (
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup",
        "--unshare-net",
        "--disable-userns",
    ):
        assert flag in b
    assert "--share-net" not in b and "--unshare-all" not in b


def test_process_hardening() -> None:
    b = bwrap_part(argv())
    assert {"--die-with-parent", "--new-session", "--as-pid-1"} <= set(b)
    assert pairs(b, "--cap-drop") == ["ALL"]
    assert "--cap-add" not in b
    assert pairs(b, "--uid") == ["1000"] and pairs(b, "--gid") == ["1000"]
    assert pairs(b, "--hostname") == ["sandbox"]


def test_mounts_package_read_only_storage_read_write_and_nothing_else_of_the_host() -> None:
    b = bwrap_part(argv())
    ro = {b[i + 1]: b[i + 2] for i, a in enumerate(b) if a == "--ro-bind"}
    rw = {b[i + 1]: b[i + 2] for i, a in enumerate(b) if a == "--bind"}
    assert ro["/run/sh/stage/app"] == "/opt/app"
    assert ro["/usr"] == "/usr"
    assert ro["/run/sh/stage/etc"] == "/etc"
    assert ro["/run/sh/stage/init"] == "/sandhaven/init"
    assert ro["/run/sh/stage/api"] == "/sandhaven/api.sock"
    assert rw == {"/run/sh/stage/var": "/var"}  # the only writable host path
    host_sources = [s for s in ro if not s.startswith("/run/sh/stage/")]
    assert all(
        s == "/usr" or s.startswith("/etc/ssl/certs") or s in ("/etc/alternatives", "/etc/php")
        for s in host_sources
    ), host_sources
    tmpfs = [b[i - 2 : i + 2] for i, a in enumerate(b) if a == "--tmpfs"]
    assert tmpfs == [
        ["--size", str(4 * MiB), "--tmpfs", "/tmp"],
        ["--size", str(4 * MiB), "--tmpfs", "/dev/shm"],
    ]
    assert pairs(b, "--dev") == ["/dev"] and pairs(b, "--proc") == ["/proc"]
    assert "--dev-bind" not in b


def test_root_is_frozen_after_every_mount_and_seccomp_comes_last() -> None:
    b = bwrap_part(argv())
    mount_ops = [
        i
        for i, a in enumerate(b)
        if a in ("--bind", "--ro-bind", "--tmpfs", "--dev", "--proc", "--symlink")
    ]
    assert b.index("--remount-ro") > max(mount_ops)
    assert pairs(b, "--remount-ro") == ["/dev", "/"]
    assert b[-2:] == ["--seccomp", "7"]


def test_environment_is_only_the_manifest_plus_platform_variables() -> None:
    b = bwrap_part(argv())
    assert "--clearenv" in b
    env = {b[i + 1]: b[i + 2] for i, a in enumerate(b) if a == "--setenv"}
    assert env == {
        "APP_MODE": "x",
        "HOME": "/var",
        "LANG": "C.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        "HTTP_PROXY": "http://127.0.0.1:15239",
        "http_proxy": "http://127.0.0.1:15239",
        "NO_PROXY": "localhost,127.0.0.1",
        "no_proxy": "localhost,127.0.0.1",
    }


def test_init_runs_the_bridge_then_the_app_command() -> None:
    args = argv()
    tail = args[args.index("--seccomp") + 2 :]
    assert tail == [
        "/sandhaven/init",
        "9",
        "8000",
        "/sandhaven/api.sock",
        "15239",
        "10",
        "--",
        "/opt/app/run",
        "--flag",
    ]


def test_without_root_sources_are_used_in_place_and_no_uid_change() -> None:
    args = argv(grain_uid=None)
    helper = args[: args.index("--")]
    assert "--stage" not in helper and "--uid" not in helper
    b = bwrap_part(args)
    assert "/data/packages/abc" in pairs(b, "--ro-bind")


@pytest.mark.parametrize(
    "env", [{"PATH": "/evil"}, {"HTTP_PROXY": "x"}, {"A=B": "x"}, {"": "x"}, {"X": "a\0b"}]
)
def test_the_manifest_cannot_override_platform_variables_or_smuggle_bad_names(
    env: dict[str, str],
) -> None:
    with pytest.raises(SandboxError):
        GrainSpec(
            package_dir=Path("/p"), storage_dir=Path("/s"), command=("x",), app_port=8000, env=env
        )


@pytest.mark.parametrize("port", [0, 65536, 15239])
def test_app_port_must_be_usable(port: int) -> None:
    with pytest.raises(SandboxError, match="port"):
        GrainSpec(package_dir=Path("/p"), storage_dir=Path("/s"), command=("x",), app_port=port)
