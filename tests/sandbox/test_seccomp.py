"""The seccomp filter on its own: run as root with every capability under
bubblewrap, so that each denial below is the filter's doing, and ordinary calls
still work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from sandhaven.sandbox import seccomp

CHECKS = r"""
import ctypes, errno, json, os, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(nr, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return "ok" if r != -1 else errno.errorcode[ctypes.get_errno()]
def sock(*a):
    try:
        socket.socket(*a).close(); return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
t = threading.Thread(target=lambda: None); t.start(); t.join()
out = {
    "personality_query": "ok" if libc.personality(0xffffffff) != -1 else "fail",
    "personality_linux": call(135, 0),
    "personality_no_aslr": call(135, 0x0040000),
    "personality_minus_one": call(135, -1),
    "personality_high_bits": call(135, (1 << 40) | 0x0040000),
    "unshare_ns": call(272, 0x00020000),
    "mount": call(165, b"none", b"/tmp", b"tmpfs", 0, None),
    "clone3": call(435, 0, 0),
    "inet": sock(socket.AF_INET, socket.SOCK_STREAM),
    "inet6": sock(socket.AF_INET6, socket.SOCK_DGRAM),
    "unix": sock(socket.AF_UNIX, socket.SOCK_STREAM),
    "netlink": sock(socket.AF_NETLINK, socket.SOCK_RAW, 0),
    "packet": sock(socket.AF_PACKET, socket.SOCK_RAW),
    "raw": sock(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "subprocess": subprocess.run(["/usr/bin/true"]).returncode,
    "thread": "ok",
}
print(json.dumps(out))
"""


def test_filter_denies_with_errors_and_leaves_ordinary_calls_alone() -> None:
    program = seccomp.build_filter()
    fd = seccomp.filter_fd(program)
    try:
        result = subprocess.run(
            [
                shutil.which("bwrap") or "bwrap",
                "--bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--seccomp",
                str(fd),
                "/usr/bin/python3",
                "-c",
                CHECKS,
            ],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(fd)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "personality_query": "ok",
        "personality_linux": "ok",
        "personality_no_aslr": "EPERM",
        "personality_minus_one": "ok",
        "personality_high_bits": "EPERM",
        "unshare_ns": "EPERM",
        "mount": "EPERM",
        "clone3": "ENOSYS",
        "inet": "ok",
        "inet6": "ok",
        "unix": "ok",
        "netlink": "ok",
        "packet": "EAFNOSUPPORT",
        "raw": "EPERM",
        "subprocess": 0,
        "thread": "ok",
    }


def test_deny_list_covers_sandstorms() -> None:
    names = {r.syscall for r in seccomp.DENIED}
    sandstorm = {
        "ptrace",
        "mount",
        "umount2",
        "pivot_root",
        "unshare",
        "setns",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "kexec_load",
        "init_module",
        "finit_module",
        "delete_module",
        "acct",
        "swapon",
        "swapoff",
        "reboot",
        "syslog",
    }
    assert sandstorm <= names
    assert {r.error for r in seccomp.DENIED} <= {1, 38}  # EPERM, ENOSYS: errors, never kills
