"""A trivial grain app (stdlib only, run by /usr/bin/python3 inside the grain).

    python3 app.py PORT

GET /            "hello"
GET /env         the environment as JSON
GET /whoami      uid, gid, pid, hostname as JSON
GET /stream      a response that sends one line every 0.2 s until the client leaves
GET /exit?code=N the process exits with status N (a crash, seen from outside);
                 with &stubborn=1 it first leaves a child that ignores SIGTERM
GET /proxy?url=U fetches U through HTTP_PROXY and returns status and body
GET /alloc?mb=N  allocates N MiB in the server process itself and keeps it
GET /big?mb=N    N MiB of bytes 0..255 repeated
POST /echo       the request body back

With IGNORE_SIGTERM=1 in the environment the server ignores SIGTERM.
"""

import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOARD = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, fmt, *args):
        pass

    def send_json(self, obj, status=200):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/":
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif url.path == "/env":
            self.send_json(dict(os.environ))
        elif url.path == "/whoami":
            self.send_json(
                {
                    "uid": os.getuid(),
                    "gid": os.getgid(),
                    "pid": os.getpid(),
                    "hostname": socket.gethostname(),
                }
            )
        elif url.path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"tick\n")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                return
        elif url.path == "/exit":
            if query.get("stubborn") == "1":
                import subprocess

                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        "import signal, time; "
                        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
                    ]
                )
            sys.stderr.write("exiting on request\n")
            sys.stderr.flush()
            os._exit(int(query.get("code", "3")))
        elif url.path == "/big":
            size = int(query.get("mb", "1")) << 20
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = bytes(range(256)) * 4096
            for _ in range(size // len(block)):
                self.wfile.write(block)
        elif url.path == "/alloc":
            HOARD.append(bytearray(int(query.get("mb", "1")) << 20))
            self.send_json({"held_mb": sum(len(b) for b in HOARD) >> 20})
        elif url.path == "/proxy":
            try:
                with urllib.request.urlopen(query["url"], timeout=5) as r:
                    self.send_json({"status": r.status, "body": r.read().decode()})
            except urllib.error.HTTPError as e:
                self.send_json({"status": e.code, "body": e.read().decode()})
            except OSError as e:
                self.send_json({"status": None, "error": str(e)})
        else:
            self.send_json({"error": "no such page"}, 404)


if __name__ == "__main__":
    if os.environ.get("IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"listening on {sys.argv[1]}", flush=True)
    server.serve_forever()
