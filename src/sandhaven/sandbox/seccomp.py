"""The grain's seccomp filter: a deny list that returns errors, never kills.

Built with libseccomp (through ``pyseccomp``: ctypes over Debian's
``libseccomp2``, so it works in any virtual environment and needs no compiler;
Debian's ``python3-seccomp`` only serves Debian's own interpreter). The filter is
compiled once to classic BPF and handed to bubblewrap as ``--seccomp FD``;
bubblewrap loads it last, after no-new-privs, just before running the init.

The list follows Sandstorm's documented one and goes further where a call is a
known escape surface (io_uring, open_by_handle_at, the new mount API). Every
entry is ``(name, errno, why)``; :data:`DENIED` is what docs/reference/sandbox.md
shows. Calls that need a namespace or a capability fail anyway; denying them
here is a second wall that also shrinks the kernel surface a grain can reach.
Non-native ABIs (i386, x32) get ENOSYS for every call.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sandhaven.errors import SandboxUnavailable


def _libseccomp() -> ModuleType:
    """pyseccomp, which loads libseccomp when imported (RuntimeError if absent)."""
    try:
        import pyseccomp
    except (ImportError, RuntimeError) as exc:
        raise SandboxUnavailable(f"libseccomp cannot be loaded: {exc}.") from None
    return pyseccomp


@dataclass(frozen=True)
class Rule:
    """One denied call: the syscall name, the errno it returns, and why."""

    syscall: str
    error: int
    why: str


_P = errno.EPERM
_N = errno.ENOSYS

DENIED: tuple[Rule, ...] = (
    Rule("ptrace", _P, "debugging other processes reads and rewrites their memory"),
    Rule("process_vm_readv", _P, "reads another process's memory"),
    Rule("process_vm_writev", _P, "writes another process's memory"),
    Rule("kcmp", _P, "compares kernel objects of other processes"),
    Rule("pidfd_getfd", _P, "steals file descriptors from another process"),
    Rule("mount", _P, "changes the file system view"),
    Rule("umount2", _P, "changes the file system view"),
    Rule("pivot_root", _P, "changes the root"),
    Rule("chroot", _P, "changes the root"),
    Rule("open_tree", _P, "new mount API"),
    Rule("move_mount", _P, "new mount API"),
    Rule("fsopen", _P, "new mount API"),
    Rule("fsconfig", _P, "new mount API"),
    Rule("fsmount", _P, "new mount API"),
    Rule("fspick", _P, "new mount API"),
    Rule("mount_setattr", _P, "new mount API"),
    Rule("unshare", _P, "new namespaces are kernel attack surface"),
    Rule("setns", _P, "joining namespaces"),
    Rule("clone3", _N, "flags cannot be inspected; ENOSYS makes libc fall back to clone"),
    Rule("keyctl", _P, "the kernel keyring is not namespaced"),
    Rule("add_key", _P, "the kernel keyring is not namespaced"),
    Rule("request_key", _P, "the kernel keyring is not namespaced"),
    Rule("bpf", _P, "BPF programs are kernel attack surface"),
    Rule("perf_event_open", _P, "performance counters leak host information"),
    Rule("userfaultfd", _P, "widens kernel race windows used by exploits"),
    Rule("io_uring_setup", _N, "io_uring is kernel attack surface; ENOSYS means fall back"),
    Rule("io_uring_enter", _N, "io_uring"),
    Rule("io_uring_register", _N, "io_uring"),
    Rule("kexec_load", _P, "replaces the kernel"),
    Rule("kexec_file_load", _P, "replaces the kernel"),
    Rule("init_module", _P, "loads kernel code"),
    Rule("finit_module", _P, "loads kernel code"),
    Rule("delete_module", _P, "unloads kernel code"),
    Rule("create_module", _P, "loads kernel code (old)"),
    Rule("acct", _P, "process accounting is host-wide"),
    Rule("swapon", _P, "host-wide"),
    Rule("swapoff", _P, "host-wide"),
    Rule("reboot", _P, "host-wide"),
    Rule("syslog", _P, "reads the host kernel log"),
    Rule("quotactl", _P, "host file system quotas"),
    Rule("quotactl_fd", _P, "host file system quotas"),
    Rule("nfsservctl", _P, "host-wide"),
    Rule("lookup_dcookie", _P, "host-wide profiling"),
    Rule("open_by_handle_at", _P, "opens files by handle, bypassing mounts"),
    Rule("name_to_handle_at", _P, "pairs with open_by_handle_at"),
    Rule("fanotify_init", _P, "host-wide file monitoring"),
    Rule("settimeofday", _P, "host clock"),
    Rule("clock_settime", _P, "host clock"),
    Rule("clock_adjtime", _P, "host clock"),
    Rule("adjtimex", _P, "host clock"),
    Rule("sethostname", _P, "the host name is the platform's"),
    Rule("setdomainname", _P, "the host name is the platform's"),
    Rule("iopl", _P, "raw I/O ports"),
    Rule("ioperm", _P, "raw I/O ports"),
    Rule("vhangup", _P, "terminal control"),
    Rule("uselib", _P, "obsolete"),
    Rule("ustat", _P, "obsolete"),
    Rule("sysfs", _P, "obsolete"),
    Rule("_sysctl", _P, "obsolete"),
    Rule("mbind", _P, "NUMA policy is host-wide"),
    Rule("migrate_pages", _P, "NUMA policy is host-wide"),
    Rule("move_pages", _P, "NUMA policy is host-wide"),
    Rule("set_mempolicy", _P, "NUMA policy"),
    Rule("get_mempolicy", _P, "NUMA policy"),
)

# Address families a grain may use: unix, inet, inet6, netlink (getifaddrs).
ALLOWED_FAMILIES = (1, 2, 10, 16)  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
_AF_MAX = 64
_SOCK_TYPE_MASK = 0xF
_SOCK_RAW = 3
_SOCK_PACKET = 10
_TIOCSTI = 0x5412  # push bytes into a terminal's input: the classic escape
_TIOCLINUX = 0x541C
# CLONE_NEWNS UTS IPC USER PID NET CGROUP (NEWTIME exists only for clone3/unshare).
_CLONE_NEW = (
    0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000
)


def _add_conditional_rules(sc: ModuleType, f: Any) -> None:
    eperm = sc.ERRNO(errno.EPERM)
    # clone with any CLONE_NEW* flag (argument 0 on x86-64).
    for bit in range(64):
        if _CLONE_NEW & (1 << bit):
            f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, 1 << bit, 1 << bit))
    # socket(): families outside the allowed ones, and raw/packet sockets.
    no_family = sc.ERRNO(errno.EAFNOSUPPORT)
    for family in range(_AF_MAX):
        if family not in ALLOWED_FAMILIES:
            f.add_rule(no_family, "socket", sc.Arg(0, sc.EQ, family))
    f.add_rule(no_family, "socket", sc.Arg(0, sc.GE, _AF_MAX))
    for family in (2, 10):
        for kind in (_SOCK_RAW, _SOCK_PACKET):
            f.add_rule(
                eperm,
                "socket",
                sc.Arg(0, sc.EQ, family),
                sc.Arg(1, sc.MASKED_EQ, _SOCK_TYPE_MASK, kind),
            )
    # ioctl: terminal input injection.
    for request in (_TIOCSTI, _TIOCLINUX):
        f.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    # personality(): only PER_LINUX (0) and the query 0xffffffff pass. The kernel
    # reads the low 32 bits only (callers passing -1 as a C int send 64 one-bits).
    # libseccomp allows one comparison per argument and rule, so "neither all-zero
    # nor all-one in the low 32 bits" is written as "some pair of neighbouring
    # bits differs": 32 pairs, two rules each.
    for bit in range(32):
        pair = (1 << bit) | (1 << ((bit + 1) % 32))
        for value in (1 << bit, 1 << ((bit + 1) % 32)):
            f.add_rule(eperm, "personality", sc.Arg(0, sc.MASKED_EQ, pair, value))


def build_filter() -> bytes:
    """Compile the grain filter for the host's native ABI to classic BPF bytes.

    Raises SandboxUnavailable when libseccomp cannot be loaded or rejects a rule.
    """
    sc = _libseccomp()
    try:
        f = sc.SyscallFilter(sc.ALLOW)
        f.set_attr(sc.Attr.ACT_BADARCH, sc.ERRNO(errno.ENOSYS))
        # A binary tree over syscall numbers instead of a linear chain: every
        # system call of the grain pays for the filter.
        f.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
        for rule in DENIED:
            f.add_rule(sc.ERRNO(rule.error), rule.syscall)
        _add_conditional_rules(sc, f)
        read_fd, write_fd = os.pipe()
        try:
            with os.fdopen(write_fd, "wb", closefd=True) as out:
                f.export_bpf(out)
            chunks = []
            while chunk := os.read(read_fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(read_fd)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SandboxUnavailable(f"The seccomp filter cannot be built: {exc}.") from None
    return b"".join(chunks)


def filter_fd(program: bytes) -> int:
    """A fresh memfd holding ``program``, positioned at 0, for bubblewrap to read.

    The caller passes it to the child and closes its own copy after the spawn.
    """
    fd = os.memfd_create("sandhaven-seccomp", os.MFD_CLOEXEC)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
