"""The command line of one grain, built by named steps as a plain list.

Read it as a table of contents: :func:`build_argv` calls each step in order,
and each step says why it exists. Nothing here runs anything, so a unit test can
read the whole command line. Order matters to bubblewrap: mounts are applied in
the order given, ``--remount-ro /`` must follow every mount, and the seccomp
filter comes last among the options (bubblewrap loads it just before exec).

The full command is::

    sandhaven-spawn <host steps> -- bwrap <sandbox steps> /sandhaven/init <bridge> -- <app argv>

The grain gets no writable host directory besides its storage: the app socket
is created by the platform and inherited as a descriptor, the API socket is
bound read-only (connecting to a socket needs no write access to its mount).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sandhaven.sandbox import etc, layout
from sandhaven.sandbox.native import Helpers
from sandhaven.sandbox.spec import PROXY_PORT, GrainSpec

PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"


@dataclass(frozen=True)
class Host:
    """Host facts the command line depends on.

    ``grain_uid`` is the unprivileged host uid/gid the grain runs as when the
    server is root (``None`` otherwise: the grain then runs as the server's own
    uid, which is only for development). ``stage`` is True when running as root:
    bind sources are staged (see native/spawn.c) so that the unprivileged
    bubblewrap can reach them.
    """

    helpers: Helpers
    paths: layout.HostPaths
    bwrap: str = "bwrap"
    grain_uid: int | None = None
    stop_grace: int = 10  # seconds the init waits after SIGTERM before SIGKILL

    @property
    def stage(self) -> bool:
        return self.grain_uid is not None


@dataclass(frozen=True)
class Sources:
    """Host paths mounted into the grain, as bubblewrap must name them."""

    app: str
    var: str
    api_socket: str
    etc: str
    init: str


def build_argv(
    spec: GrainSpec,
    grain_id: str,
    host: Host,
    *,
    cgroup_procs: list[Path],
    seccomp_fd: int,
    info_fd: int,
    app_listen_fd: int,
) -> list[str]:
    """The whole command for one grain start. The ``*_fd`` are descriptor numbers
    the caller passes to the child: the compiled filter; a pipe where bubblewrap
    writes the init's host PID as JSON; the listening app socket."""
    sources = grain_sources(spec, grain_id, host)
    return [
        *host_preparation(spec, grain_id, host, cgroup_procs),
        host.bwrap,
        *namespaces(),
        *process_hardening(),
        *base_filesystem(sources),
        *grain_filesystem(spec, sources),
        *freeze_root(),
        *identity(),
        *environment(spec),
        *reporting(info_fd),
        *seccomp(seccomp_fd),
        *init_and_command(spec, app_listen_fd, host.stop_grace),
    ]


def grain_sources(spec: GrainSpec, grain_id: str, host: Host) -> Sources:
    """Where bubblewrap finds each source: under the stage when staged."""
    if host.stage:
        stage = host.paths.stage_dir
        return Sources(
            app=str(stage / "app"),
            var=str(stage / "var"),
            api_socket=str(stage / "api"),
            etc=str(stage / "etc"),
            init=str(stage / "init"),
        )
    return Sources(
        app=str(spec.package_dir),
        var=str(spec.storage_dir),
        api_socket=str(host.paths.api_socket(grain_id)),
        etc=str(host.paths.etc_dir),
        init=str(host.helpers.init),
    )


def host_preparation(
    spec: GrainSpec, grain_id: str, host: Host, cgroup_procs: list[Path]
) -> list[str]:
    """Cgroups first, so every process of the grain is counted from its first fork;
    rlimits inherited by all; sources staged; then the drop to the grain uid, so
    bubblewrap and everything below never hold host privileges."""
    argv = [str(host.helpers.spawn)]
    for procs in cgroup_procs:
        argv += ["--cgroup", str(procs)]
    soft, hard = spec.limits.open_files
    argv += ["--nofile", f"{soft}:{hard}"]
    if host.stage:
        argv += [
            "--stage-root",
            str(host.paths.stage_dir),
            "--stage",
            f"app={spec.package_dir}:ro",
            "--stage",
            f"var={spec.storage_dir}",
            "--stage",
            f"api={host.paths.api_socket(grain_id)}:ro",
            "--stage",
            f"etc={host.paths.etc_dir}:ro",
            "--stage",
            f"init={host.helpers.init}:ro",
        ]
        argv += ["--uid", str(host.grain_uid), "--gid", str(host.grain_uid)]
    return [*argv, "--"]


def namespaces() -> list[str]:
    """Own user, PID, IPC, UTS, cgroup and network namespaces (the network one
    holds only loopback); no further user namespaces can be made inside."""
    return [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup",
        "--unshare-net",
        "--disable-userns",
    ]


def process_hardening() -> list[str]:
    """Die with the server; a new session so the grain cannot push input into a
    terminal; no capabilities; our init is PID 1 (bubblewrap's own PID 1 would
    SIGKILL everything on stop, see field notes)."""
    return ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--as-pid-1"]


def base_filesystem(sources: Sources) -> list[str]:
    """The host's /usr read-only (the merged-/usr links point into it) and the
    curated /etc; nothing else of the host."""
    argv = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        if os.path.isdir(f"/usr/{name}"):
            argv += ["--symlink", f"usr/{name}", f"/{name}"]
    argv += ["--ro-bind", sources.etc, "/etc"]
    for host_dir, inside in etc.host_etc_binds():
        argv += ["--ro-bind", host_dir, inside]
    return argv


def grain_filesystem(spec: GrainSpec, sources: Sources) -> list[str]:
    """The package read-only, the grain's storage read-write, a capped /tmp, a
    minimal /dev whose /dev/shm is capped like /tmp (else shared memory could take
    the whole memory limit and get the grain OOM-killed over and over), a /proc
    of the grain's own PID namespace, the platform's API socket, and the init."""
    return [
        "--ro-bind",
        sources.app,
        layout.INSIDE_APP,
        "--bind",
        sources.var,
        layout.INSIDE_VAR,
        "--size",
        str(spec.limits.tmp_bytes),
        "--tmpfs",
        layout.INSIDE_TMP,
        "--dev",
        "/dev",
        "--size",
        str(spec.limits.tmp_bytes),
        "--tmpfs",
        "/dev/shm",
        "--proc",
        "/proc",
        "--ro-bind",
        sources.api_socket,
        layout.INSIDE_API_SOCKET,
        "--ro-bind",
        sources.init,
        layout.INSIDE_INIT,
    ]


def freeze_root() -> list[str]:
    """The root and /dev read-only: nothing can be written outside /var, /tmp
    and /dev/shm (each a mount of its own, not touched by these remounts)."""
    return ["--remount-ro", "/dev", "--remount-ro", "/"]


def identity() -> list[str]:
    """uid/gid 1000 (named in the curated passwd) and the host name ``sandbox``."""
    return [
        "--uid",
        str(layout.GRAIN_UID),
        "--gid",
        str(layout.GRAIN_GID),
        "--hostname",
        layout.HOSTNAME,
    ]


def environment(spec: GrainSpec) -> list[str]:
    """Only what the manifest declares, plus HOME, PATH, LANG and the proxy
    variables through which the app calls the platform (compat.md)."""
    argv = ["--clearenv", "--chdir", layout.INSIDE_VAR]
    fixed = {
        "HOME": layout.INSIDE_VAR,
        "PATH": PATH,
        "LANG": "C.UTF-8",
        "HTTP_PROXY": PROXY_URL,
        "http_proxy": PROXY_URL,
        "NO_PROXY": "localhost,127.0.0.1",
        "no_proxy": "localhost,127.0.0.1",
    }
    for name, value in {**spec.env, **fixed}.items():
        argv += ["--setenv", name, value]
    return argv


def reporting(info_fd: int) -> list[str]:
    """bubblewrap writes the init's host PID here; stop signals it directly."""
    return ["--info-fd", str(info_fd)]


def seccomp(seccomp_fd: int) -> list[str]:
    """Last: the syscall filter (sandhaven.sandbox.seccomp), loaded after
    no-new-privs, just before the init runs."""
    return ["--seccomp", str(seccomp_fd)]


def init_and_command(spec: GrainSpec, app_listen_fd: int, grace: int) -> list[str]:
    """The init with its bridge endpoints (the inherited app listener, the app's
    port, the API socket, the proxy port) and the seconds it gives processes
    after SIGTERM, then the app's own command."""
    return [
        layout.INSIDE_INIT,
        str(app_listen_fd),
        str(spec.app_port),
        layout.INSIDE_API_SOCKET,
        str(PROXY_PORT),
        str(grace),
        "--",
        *spec.command,
    ]
