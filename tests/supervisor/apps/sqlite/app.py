"""A SQLite writer grain: commits small transactions to /var/data.sqlite3 without pause.

    python3 app.py PORT

GET /        {"rows": N} rows committed so far
On SIGTERM it finishes the transaction in flight, closes the database and
writes /var/clean-shutdown ("rows N"), then exits 0. A hard kill instead leaves
the rollback journal of the open transaction behind (a "hot journal").
"""

import json
import os
import signal
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DB = "/var/data.sqlite3"
stop = threading.Event()
rows = 0


def writer(server):
    global rows
    db = sqlite3.connect(DB, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload BLOB)")
    rows = db.execute("SELECT count(*) FROM t").fetchone()[0]
    while not stop.is_set():
        db.execute("BEGIN IMMEDIATE")
        for _ in range(20):
            db.execute("INSERT INTO t (payload) VALUES (?)", (os.urandom(512),))
        db.execute("COMMIT")
        rows += 20
    db.close()
    with open("/var/clean-shutdown", "w") as f:
        f.write(f"rows {rows}\n")
    server.shutdown()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        data = json.dumps({"rows": rows}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    if os.path.exists("/var/clean-shutdown"):
        os.unlink("/var/clean-shutdown")
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    threading.Thread(target=writer, args=(server,)).start()
    server.serve_forever()
    print("clean shutdown", flush=True)
