"""The hostile grain suite: each probe tries one way out, for real, and must fail
the expected way while a neighbour grain keeps serving.

The table below is the specification; docs/reference/sandbox.md explains each row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from sandhaven.encryption.kek import Kek
from sandhaven.encryption.volumes import GrainVolumes
from sandhaven.sandbox.spec import Limits, MiB
from sandhaven.sandbox.testing import (
    GrainHarness,
    make_runtime_root,
    python_app_spec,
    remove_tree,
    test_config,
)
from sandhaven.supervisor import GrainState

APPS = Path(__file__).parent / "apps"

HOSTILE_LIMITS = Limits(memory_bytes=192 * MiB, max_processes=48, tmp_bytes=8 * MiB)

EXPECTED: dict[str, set[str]] = {
    # files of the host and of others
    "read_etc_shadow": {"ENOENT"},
    "host_accounts": {"only-grain-accounts"},
    "read_data_dir": {"ENOENT"},
    "read_other_grain": {"ENOENT"},
    "host_proc_environ": {"isolated"},
    "platform_socket": {"ENOENT"},
    "sysfs": {"ENOENT"},
    # network
    "abstract_socket": {"ECONNREFUSED"},
    "host_loopback_tcp": {"ECONNREFUSED"},
    "outside_address": {"ENETUNREACH"},
    "outside_ipv6": {"ENETUNREACH", "EADDRNOTAVAIL"},
    "dns_lookup": {"resolution-failed"},
    "network_interfaces": {"loopback-only"},
    "raw_socket": {"EPERM"},
    "packet_socket": {"EAFNOSUPPORT"},
    "vsock_socket": {"EAFNOSUPPORT"},
    "alg_socket": {"EAFNOSUPPORT"},
    # other processes
    "ptrace": {"EPERM"},
    "process_vm_readv": {"EPERM"},
    "signal_outside": {"ESRCH"},
    # namespaces, mounts, root
    "mount": {"EPERM"},
    "unshare_user": {"EPERM"},
    "unshare_net": {"EPERM"},
    "setns": {"EPERM"},
    "clone3": {"ENOSYS"},
    "pivot_root": {"EPERM"},
    "chroot": {"EPERM"},
    # kernel interfaces
    "keyctl": {"EPERM"},
    "add_key": {"EPERM"},
    "bpf": {"EPERM"},
    "perf_event_open": {"EPERM"},
    "userfaultfd": {"EPERM"},
    "io_uring": {"ENOSYS"},
    "kernel_module": {"EPERM"},
    "kexec": {"EPERM"},
    "personality": {"EPERM"},
    "open_by_handle": {"EPERM"},
    "kernel_log": {"EPERM"},
    "hostname": {"EPERM"},
    "proc_sys_write": {"EROFS", "EACCES"},
    # writes outside /var and /tmp
    "write_opt_app": {"EROFS"},
    "write_usr": {"EROFS"},
    "write_etc": {"EROFS"},
    "write_root": {"EROFS"},
    "write_platform_dir": {"EROFS"},
    "write_dev": {"EROFS"},
    "fill_dev_shm": {"ENOSPC"},
    "read_kcore": {"ENOENT"},
    "sysrq": {"ENOENT"},
    "inherited_fds": {"none"},
    # limits
    "fill_tmp": {"ENOSPC"},
    "fork_bomb": {"EAGAIN"},
    "memory_hog": {"SIGKILL"},
    # privileges and devices
    "setuid_binary": {"no-privilege"},
    "capabilities": {"none"},
    "dev_devices": {"absent"},
    "mknod": {"EPERM"},
    "terminal": {"ENXIO"},
}


class Suite:
    def __init__(self, harness: GrainHarness, ctx: dict[str, Any]) -> None:
        self.harness = harness
        self.ctx = ctx

    def probe(self, name: str) -> dict[str, Any]:
        status, body = self.harness.get(
            "hostile", f"/probe/{name}?ctx={quote(json.dumps(self.ctx))}", timeout=90
        )
        assert status == 200, body
        return json.loads(body)


@pytest.fixture(scope="module")
def suite() -> Iterator[Suite]:
    root = make_runtime_root()
    specs = {
        "hostile": lambda: python_app_spec(
            root, "hostile", APPS / "hostile", limits=HOSTILE_LIMITS
        ),
        "neighbour": lambda: python_app_spec(root, "neighbour", APPS / "hello"),
    }
    # Each grain's /var is its own encrypted volume, mounted while it runs, as served.
    config = test_config(root)
    volumes = GrainVolumes(Kek.generate(), root / "grains", config.runtime_dir / "volumes",
                           "gocryptfs", allow_other=True)
    for gid in specs:
        volumes.create(gid)

    async def spec_for(gid: str) -> Any:
        point = await asyncio.to_thread(volumes.mount, gid)
        return dataclasses.replace(specs[gid](), storage_dir=point)

    async def release(gid: str) -> None:
        await asyncio.to_thread(volumes.unmount, gid)

    host_tcp = socket.socket()
    host_tcp.bind(("127.0.0.1", 0))
    host_tcp.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract_name = f"sandhaven-test-{os.getpid()}"
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    harness = GrainHarness(spec_for, config, release)
    try:
        assert harness.get("neighbour")[0] == 200
        neighbour_socket = harness.call(harness.supervisor.ensure_running("neighbour"))
        ctx = {
            "data_dir": str(root),
            "neighbour_storage": str(volumes.mountpoint("neighbour")),
            "neighbour_socket": str(neighbour_socket),
            "host_port": host_tcp.getsockname()[1],
            "host_pid": os.getpid(),
            "abstract_name": abstract_name,
        }
        yield Suite(harness, ctx)
    finally:
        harness.close()
        host_tcp.close()
        abstract.close()
        remove_tree(root)


def test_the_suite_has_at_least_30_probes_and_the_app_knows_them_all(suite: Suite) -> None:
    status, body = suite.harness.get("hostile", "/probes")
    assert status == 200
    assert sorted(json.loads(body)) == sorted(EXPECTED)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_probe_fails_the_expected_way(suite: Suite, name: str) -> None:
    result = suite.probe(name)
    assert result["outcome"] in EXPECTED[name], result
    # The grain itself is still up and its neighbour keeps serving.
    assert suite.harness.run(suite.harness.supervisor.status, "hostile") is GrainState.RUNNING
    assert suite.harness.get("neighbour") == (200, b"hello")


def test_limits_held_at_their_figures(suite: Suite) -> None:
    filled = suite.probe("fill_tmp")["detail"]
    assert filled <= HOSTILE_LIMITS.tmp_bytes
    assert suite.probe("fill_dev_shm")["detail"] <= HOSTILE_LIMITS.tmp_bytes
    forks = suite.probe("fork_bomb")["detail"]
    assert int(forks[0]) < HOSTILE_LIMITS.max_processes


def test_nothing_of_the_grains_is_left_on_the_host_after_stop(suite: Suite) -> None:
    sup = suite.harness.supervisor
    run_dir = Path(sup.config.runtime_dir)
    suite.harness.call(sup.stop("hostile"))
    assert sup.status("hostile") is GrainState.STOPPED
    assert sup.last_exit("hostile").reason == "stopped"  # cleanly, despite all of the above
    assert sup.statistics()["crashes"] == 0
    assert not (run_dir / "grains" / "hostile").exists()
    assert not (run_dir / "volumes" / "hostile").exists()  # its plaintext is unmounted
    cg = sup._cgroups.grain("hostile")  # noqa: SLF001 - checking the host side directly
    assert not any(d.exists() for d in cg.dirs)
    assert suite.harness.get("neighbour") == (200, b"hello")
