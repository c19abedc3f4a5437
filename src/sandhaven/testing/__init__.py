"""Test helpers shipped with Sandhaven, for its own tests and for app packagers:
real servers on real sockets, no mocks.

- :mod:`.server` — a real SMTP server, a real ``sandhaven serve`` on a free port,
  and helpers for the shell's forms (re-exported here);
- :mod:`.http_grain` — a small HTTP app on a Unix socket, standing in for a grain;
- :mod:`.gateway_server` — the gateway stack served by uvicorn on a free port.
"""

from sandhaven.testing.server import (
    LiveServer,
    Mailbox,
    csrf_from,
    free_port,
    login_code,
    login_link,
    mail_text,
    make_data_dir,
    smtp_server,
    start_server,
    stop_server,
)

__all__ = ["LiveServer", "Mailbox", "csrf_from", "free_port", "login_code", "login_link",
           "mail_text", "make_data_dir", "smtp_server", "start_server", "stop_server"]
