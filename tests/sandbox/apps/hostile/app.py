"""The hostile grain: every probe tries one way out and reports what happened.

    python3 app.py PORT

GET /probes              the probe names, as JSON
GET /probe/NAME?ctx=JSON run one probe; answers {"name", "outcome", "detail"}

``outcome`` is the errno name the attempt ended with ("EPERM", "ENOENT"...),
"ok" when the attempt succeeded (an escape), or a probe-specific word
("SIGKILL", "absent", "isolated"...). The test suite decides what is expected
(tests/sandbox/test_hostile.py); docs/reference/sandbox.md lists the probes.
``ctx`` carries host facts the probe aims at: paths of the data dir, of another
grain's storage and socket, a host TCP port, a host PID, an abstract socket name.
"""

import contextlib
import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# Descriptors the app was started with (the listing itself opens one more).
STARTUP_FDS = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# x86-64 system call numbers.
NR = {
    "ptrace": 101,
    "syslog": 103,
    "personality": 135,
    "chroot": 161,
    "mount": 165,
    "sethostname": 170,
    "init_module": 175,
    "kexec_load": 246,
    "add_key": 248,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "clone3": 435,
    "pivot_root": 155,
}


def sys_call(name, *args):
    """Run a raw system call; "ok" or the errno name."""
    ctypes.set_errno(0)
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    r = libc.syscall(NR[name], *args)
    if r == -1:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return "ok"


def attempt(fn, *args, **kwargs):
    """Call fn; "ok" or the errno name of the OSError it raised."""
    try:
        fn(*args, **kwargs)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e)) if e.errno else type(e).__name__


def read_file(path):
    with open(path, "rb") as f:
        f.read(1)


def connect(family, address, kind=socket.SOCK_STREAM):
    s = socket.socket(family, kind)
    s.settimeout(3)
    try:
        s.connect(address)
    finally:
        s.close()


def child_status(code, timeout=60):
    """Run python code in a child; its fate as a word."""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=timeout)
    if p.returncode < 0:
        return signal.Signals(-p.returncode).name, p.stdout.decode()[-200:]
    return (p.stdout.decode().strip() or f"exit {p.returncode}"), p.stderr.decode()[-200:]


def probe_read_etc_shadow(ctx):
    return attempt(read_file, "/etc/shadow"), ""


def probe_host_accounts(ctx):
    names = [line.split(":")[0] for line in open("/etc/passwd")]
    return ("only-grain-accounts" if set(names) <= {"root", "grain", "nobody"} else "host"), names


def probe_read_data_dir(ctx):
    return attempt(os.listdir, ctx["data_dir"]), ctx["data_dir"]


def probe_read_other_grain(ctx):
    return attempt(os.listdir, ctx["neighbour_storage"]), ctx["neighbour_storage"]


def probe_host_proc_environ(ctx):
    cmd = open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode()
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    host_pid = attempt(read_file, f"/proc/{ctx['host_pid']}/environ")
    outcome = "isolated" if cmd == "/sandhaven/init" and host_pid == "ENOENT" else "host"
    return outcome, {"pid1": cmd, "visible_pids": len(pids), "host_pid": host_pid}


def probe_platform_socket(ctx):
    return attempt(connect, socket.AF_UNIX, ctx["neighbour_socket"]), ctx["neighbour_socket"]


def probe_abstract_socket(ctx):
    return attempt(connect, socket.AF_UNIX, "\0" + ctx["abstract_name"]), ctx["abstract_name"]


def probe_host_loopback_tcp(ctx):
    return attempt(connect, socket.AF_INET, ("127.0.0.1", ctx["host_port"])), ctx["host_port"]


def probe_outside_address(ctx):
    return attempt(connect, socket.AF_INET, ("1.1.1.1", 80)), "1.1.1.1:80"


def probe_outside_ipv6(ctx):
    return attempt(connect, socket.AF_INET6, ("2606:4700:4700::1111", 80)), ""


def probe_dns_lookup(ctx):
    try:
        socket.getaddrinfo("example.com", 80)
        return "ok", ""
    except socket.gaierror as e:
        return "resolution-failed", str(e)


def probe_network_interfaces(ctx):
    names = [name for _, name in socket.if_nameindex()]
    return ("loopback-only" if names == ["lo"] else "more"), names


def probe_raw_socket(ctx):
    return attempt(socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), ""


def probe_packet_socket(ctx):
    return attempt(socket.socket, socket.AF_PACKET, socket.SOCK_RAW), ""


def probe_vsock_socket(ctx):
    return attempt(socket.socket, 40, socket.SOCK_STREAM), "AF_VSOCK"


def probe_alg_socket(ctx):
    return attempt(socket.socket, 38, socket.SOCK_SEQPACKET), "AF_ALG"


def probe_ptrace(ctx):
    child = subprocess.Popen(["/usr/bin/sleep", "30"])
    try:
        return sys_call("ptrace", 16, child.pid, 0, 0), f"PTRACE_ATTACH {child.pid}"
    finally:
        child.kill()
        child.wait()


def probe_process_vm_readv(ctx):
    return sys_call("process_vm_readv", 1, 0, 0, 0, 0, 0), "pid 1"


def probe_mount(ctx):
    os.makedirs("/tmp/m", exist_ok=True)
    return sys_call("mount", b"none", b"/tmp/m", b"tmpfs", 0, None), ""


def probe_unshare_user(ctx):
    return sys_call("unshare", 0x10000000), "CLONE_NEWUSER"


def probe_unshare_net(ctx):
    return sys_call("unshare", 0x40000000), "CLONE_NEWNET"


def probe_setns(ctx):
    fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        return sys_call("setns", fd, 0), ""
    finally:
        os.close(fd)


def probe_clone3(ctx):
    return sys_call("clone3", 0, 0), ""


def probe_pivot_root(ctx):
    return sys_call("pivot_root", b"/tmp", b"/tmp"), ""


def probe_chroot(ctx):
    return sys_call("chroot", b"/tmp"), ""


def probe_keyctl(ctx):
    return sys_call("keyctl", 0, -3, 0), "KEYCTL_GET_KEYRING_ID session"


def probe_add_key(ctx):
    return sys_call("add_key", b"user", b"x", b"secret", 6, -3), ""


def probe_bpf(ctx):
    return sys_call("bpf", 5, None, 0), "BPF_PROG_LOAD"


def probe_perf_event_open(ctx):
    return sys_call("perf_event_open", None, 0, -1, -1, 0), ""


def probe_userfaultfd(ctx):
    return sys_call("userfaultfd", 0), ""


def probe_io_uring(ctx):
    return sys_call("io_uring_setup", 1, None), ""


def probe_kernel_module(ctx):
    return sys_call("init_module", None, 0, b""), ""


def probe_kexec(ctx):
    return sys_call("kexec_load", 0, 0, None, 0), ""


def probe_personality(ctx):
    return sys_call("personality", 0x0040000), "ADDR_NO_RANDOMIZE"


def probe_open_by_handle(ctx):
    return sys_call("open_by_handle_at", -100, None, 0), ""


def probe_write_opt_app(ctx):
    return attempt(lambda: open("/opt/app/planted", "w").close()), "/opt/app/planted"


def probe_write_usr(ctx):
    return attempt(lambda: open("/usr/bin/planted", "w").close()), "/usr/bin/planted"


def probe_write_etc(ctx):
    return attempt(lambda: open("/etc/planted", "w").close()), "/etc/planted"


def probe_write_root(ctx):
    return attempt(os.mkdir, "/planted"), "/planted"


def probe_write_platform_dir(ctx):
    return attempt(lambda: open("/sandhaven/planted", "w").close()), "/sandhaven/planted"


def probe_inherited_fds(ctx):
    # Only 0-2 (and the listing's own); the app socket and the seccomp, info and
    # other descriptors of the platform stay out of the app's reach.
    return ("none" if len(STARTUP_FDS) <= 4 else "leaked"), STARTUP_FDS


def probe_write_dev(ctx):
    return attempt(lambda: open("/dev/planted", "w").close()), "/dev/planted"


def probe_fill_dev_shm(ctx):
    written = 0
    chunk = b"x" * (1 << 20)
    outcome = "ok"
    try:
        with open("/dev/shm/fill", "wb") as f:
            for _ in range(4096):
                f.write(chunk)
                f.flush()
                written += len(chunk)
    except OSError as e:
        outcome = errno.errorcode.get(e.errno, str(e))
    finally:
        with contextlib.suppress(OSError):
            os.unlink("/dev/shm/fill")
    return outcome, written


def probe_read_kcore(ctx):
    return attempt(read_file, "/proc/kcore"), ""


def probe_sysrq(ctx):
    def write():
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("h")

    return attempt(write), ""


def probe_fill_tmp(ctx):
    written = 0
    chunk = b"x" * (1 << 20)
    outcome = "ok"
    try:
        with open("/tmp/fill", "wb") as f:
            for _ in range(4096):
                f.write(chunk)
                f.flush()
                written += len(chunk)
    except OSError as e:
        outcome = errno.errorcode.get(e.errno, str(e))
    finally:
        os.unlink("/tmp/fill")
    return outcome, written


def probe_fork_bomb(ctx):
    code = (
        "import os, sys, time\n"
        "n = 0\n"
        "try:\n"
        "    while n < 100000:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        n += 1\n"
        "    print('unbounded', flush=True)\n"
        "except OSError as e:\n"
        "    import errno; print(errno.errorcode[e.errno], n, flush=True)\n"
    )
    # A new process group so the children can be killed together afterwards.
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    out = p.stdout.readline().decode().split()
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    return (out[0] if out else "no-output"), out[1:]


def probe_memory_hog(ctx):
    code = (
        "blocks = []\n"
        "for _ in range(8192):\n"
        "    blocks.append(bytearray(1 << 20))\n"
        "print('survived', flush=True)\n"
    )
    return child_status(code)


def probe_setuid_binary(ctx):
    status = open("/proc/self/status").read()
    nnp = [line for line in status.splitlines() if line.startswith("NoNewPrivs")]
    try:
        p = subprocess.run(
            ["/usr/bin/mount", "-t", "tmpfs", "none", "/tmp"], capture_output=True, timeout=10
        )
        ran = f"exit {p.returncode}"
    except OSError as e:
        ran = errno.errorcode.get(e.errno, str(e))
    outcome = "no-privilege" if nnp == ["NoNewPrivs:\t1"] and ran != "exit 0" else "ok"
    return outcome, {"mount": ran, "nnp": nnp}


def probe_capabilities(ctx):
    caps = {
        line.split(":")[0]: line.split()[1]
        for line in open("/proc/self/status")
        if line.startswith("Cap")
    }
    none = all(int(v, 16) == 0 for v in caps.values())
    return ("none" if none else "some"), caps


def probe_dev_devices(ctx):
    tried = {
        p: attempt(read_file, p)
        for p in ("/dev/sda", "/dev/mem", "/dev/kmsg", "/dev/vda", "/dev/fuse")
    }
    outcome = "absent" if set(tried.values()) == {"ENOENT"} else "present"
    return outcome, {"tried": tried, "dev": sorted(os.listdir("/dev"))}


def probe_mknod(ctx):
    import stat

    return attempt(os.mknod, "/tmp/mem", stat.S_IFCHR | 0o600, os.makedev(1, 1)), "/dev/mem"


def probe_signal_outside(ctx):
    return attempt(os.kill, ctx["host_pid"], signal.SIGTERM), ctx["host_pid"]


def probe_hostname(ctx):
    return sys_call("sethostname", b"evil", 4), socket.gethostname()


def probe_kernel_log(ctx):
    return sys_call("syslog", 3, ctypes.create_string_buffer(1024), 1024), "SYSLOG_ACTION_READ_ALL"


def probe_sysfs(ctx):
    return attempt(os.listdir, "/sys/class/net"), ""


def probe_proc_sys_write(ctx):
    def write():
        with open("/proc/sys/kernel/hostname", "w") as f:
            f.write("evil")

    return attempt(write), ""


def probe_terminal(ctx):
    return attempt(os.open, "/dev/tty", os.O_RDWR), "controlling terminal"


PROBES = {
    name[len("probe_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("probe_")
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, obj, status=200):
        data = json.dumps(obj, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            self.send_json({"ok": True})
        elif url.path == "/probes":
            self.send_json(sorted(PROBES))
        elif url.path.startswith("/probe/"):
            name = url.path[len("/probe/") :]
            ctx = json.loads(parse_qs(url.query).get("ctx", ["{}"])[0])
            try:
                outcome, detail = PROBES[name](ctx)
            except Exception as e:  # a probe that breaks is reported, not hidden
                outcome, detail = "probe-error", f"{type(e).__name__}: {e}"
            self.send_json({"name": name, "outcome": outcome, "detail": detail})
        else:
            self.send_json({"error": "no such page"}, 404)


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
