"""The catalog readers: a directory on disk and a real static web server."""

from __future__ import annotations

import io
import os
import socket

import httpx
import pytest

from sandhaven.catalog.sources import load, read
from sandhaven.catalog.sources.directory import DirectorySource
from sandhaven.catalog.sources.web import WebSource
from sandhaven.errors import CatalogError
from sandhaven.testing import free_port


def test_load_picks_the_reader_by_setting(tmp_path):
    assert isinstance(load("https://apps.example.org/catalog", tmp_path), WebSource)
    assert load("", tmp_path).location == str(tmp_path / "catalog")
    assert load(str(tmp_path / "elsewhere"), tmp_path).location == str(tmp_path / "elsewhere")


def test_directory_reads_files_and_refuses_what_leaves_it(tmp_path):
    root = tmp_path / "catalog"
    (root / "icons").mkdir(parents=True)
    (root / "icons" / "a.svg").write_bytes(b"<svg/>")
    (tmp_path / "secret").write_text("host file")
    os.symlink(tmp_path / "secret", root / "icons" / "link.svg")
    source = DirectorySource(root)
    assert read(source, "icons/a.svg", 100) == b"<svg/>"
    for path in ("../secret", "/etc/passwd", "icons/../../secret", "icons//a.svg", ""):
        with pytest.raises(CatalogError, match="not a safe relative path"):
            read(source, path, 100)
    with pytest.raises(CatalogError, match="through a symlink"):
        read(source, "icons/link.svg", 100)
    with pytest.raises(CatalogError, match="'icons/b.svg' is missing"):
        read(source, "icons/b.svg", 100)
    with pytest.raises(CatalogError, match="'icons' is not a regular file"):
        read(source, "icons", 100)
    os.mkfifo(root / "icons" / "fifo.svg")
    with pytest.raises(CatalogError, match="'icons/fifo.svg' is not a regular file"):
        read(source, "icons/fifo.svg", 100)
    with pytest.raises(CatalogError, match="larger than the limit of 5 bytes"):
        read(source, "icons/a.svg", 5)
    with pytest.raises(CatalogError, match="does not exist"):
        read(DirectorySource(tmp_path / "none"), "index.json", 100)


def test_web_source_reads_from_a_real_static_server(tmp_path, static_server):
    (tmp_path / "icons").mkdir()
    (tmp_path / "icons" / "a.svg").write_bytes(b"<svg/>" * 100)
    source = WebSource(static_server(tmp_path) + "/")
    assert read(source, "icons/a.svg", 600) == b"<svg/>" * 100
    with pytest.raises(CatalogError, match="answered HTTP 404 for 'icons/b.svg'"):
        read(source, "icons/b.svg", 100)
    with pytest.raises(CatalogError, match="larger than the limit of 599 bytes"):
        read(source, "icons/a.svg", 599)
    with pytest.raises(CatalogError, match="not a safe relative path"):
        read(source, "../etc/passwd", 100)
    # http.server redirects a directory without its slash; redirects are not followed.
    with pytest.raises(CatalogError, match="answered HTTP 301"):
        read(source, "icons", 100)


def test_an_oversized_body_without_length_is_cut_at_the_limit(tmp_path):
    """A server that sends no Content-Length and never stops: the reader stops at
    the first byte past the limit."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def endless() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n")
            try:
                while not stop.is_set():
                    conn.sendall(b"x" * 65536)
            except OSError:
                pass

    thread = threading.Thread(target=endless)
    thread.start()
    try:
        out = io.BytesIO()
        with pytest.raises(CatalogError, match="larger than the limit of 100000 bytes"):
            WebSource(f"http://127.0.0.1:{port}").fetch("index.json", out, 100_000)
        assert len(out.getvalue()) <= 100_000
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


def test_an_unreachable_catalog_is_named():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CatalogError, match=f"The catalog at {url} cannot be reached"):
        read(WebSource(url), "index.json", 100)


def test_a_silent_catalog_times_out():
    """A server that accepts the connection and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        source = WebSource(url, timeout=httpx.Timeout(0.3))
        with pytest.raises(CatalogError, match="did not answer in time for 'index.json'"):
            read(source, "index.json", 100)
    finally:
        listener.close()
