"""A grain with a private MariaDB server, the way WordPress runs in the field notes.

    python3 app.py PORT

On first start it creates the database in /var/mysql. It starts ``mariadbd``
(unix socket in /tmp, no network, no grant tables) as a child, waits until the
server answers, then serves HTTP:

GET /write   inserts a row, answers {"rows": N}
GET /count   answers {"rows": N}

On stop the grain's init sends SIGTERM to every process: this app dies at once,
``mariadbd`` (re-parented to the init) shuts down cleanly and is reaped. Its log
is /var/mysql-error.log.
"""

import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATADIR = "/var/mysql"
SOCKET = "/tmp/mysqld.sock"
LOG = "/var/mysql-error.log"
COMMON = ["--no-defaults"]


def sql(statement):
    out = subprocess.run(
        ["/usr/bin/mariadb", *COMMON, "-S", SOCKET, "-N", "-B", "-e", statement, "app"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def start_database():
    if not os.path.isdir(os.path.join(DATADIR, "mysql")):
        subprocess.run(
            [
                "/usr/bin/mariadb-install-db",
                *COMMON,
                f"--datadir={DATADIR}",
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    subprocess.Popen(
        [
            "/usr/sbin/mariadbd",
            *COMMON,
            f"--datadir={DATADIR}",
            f"--socket={SOCKET}",
            "--skip-networking",
            "--skip-grant-tables",
            f"--log-error={LOG}",
            "--pid-file=/tmp/mysqld.pid",
            "--innodb-buffer-pool-size=32M",
        ]
    )
    deadline = time.monotonic() + 60
    while (
        subprocess.run(
            ["/usr/bin/mariadb-admin", *COMMON, "-S", SOCKET, "ping"], capture_output=True
        ).returncode
        != 0
    ):
        if time.monotonic() > deadline:
            sys.exit("mariadbd did not come up")
        time.sleep(0.05)
    subprocess.run(
        [
            "/usr/bin/mariadb",
            *COMMON,
            "-S",
            SOCKET,
            "-e",
            "CREATE DATABASE IF NOT EXISTS app; "
            "CREATE TABLE IF NOT EXISTS app.t (id INT AUTO_INCREMENT PRIMARY KEY, "
            "v VARCHAR(100)) ENGINE=InnoDB",
        ],
        check=True,
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        if self.path == "/write":
            sql("INSERT INTO t (v) VALUES ('x')")
        rows = int(sql("SELECT count(*) FROM t"))
        data = json.dumps({"rows": rows}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    start_database()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
