#!/usr/bin/python3
"""Hello, the example Sandhaven app (Python standard library only).

GET /  -> 200 JSON {"headers": {every X-Sandstorm-* header received}, "note": text of
          /var/note.txt or ""}
POST / -> stores the request body (UTF-8 text, at most 64 KiB) in /var/note.txt;
          needs the "write" permission in X-Sandstorm-Permissions, else 403.

Listens on 127.0.0.1:$PORT (default 8000), the port its manifest declares.
NOTE_PATH overrides /var/note.txt, for running outside a grain.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOTE_PATH = os.environ.get("NOTE_PATH", "/var/note.txt")
MAX_NOTE = 64 * 1024


def read_note():
    try:
        with open(NOTE_PATH, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, payload):
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        headers = {k: v for k, v in self.headers.items() if k.lower().startswith("x-sandstorm-")}
        self._send(200, {"headers": headers, "note": read_note()})

    def do_POST(self):
        permissions = self.headers.get("X-Sandstorm-Permissions", "").split(",")
        if "write" not in permissions:
            self._send(403, {"error": "the write permission is required"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_NOTE:
            self._send(413, {"error": f"a note is at most {MAX_NOTE} bytes"})
            return
        text = self.rfile.read(length).decode("utf-8", errors="replace")
        tmp = NOTE_PATH + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, NOTE_PATH)
        self._send(200, {"note": text})

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


def main():
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"hello listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
