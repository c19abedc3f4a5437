"""The composition root: builds one server's parts and serves them.

``build_app(services)`` gives the whole ASGI app: lifespan (supervisor,
maintenance), an access log that never records query strings, trusted forwarded
headers, then routing by host to the shell, session hosts and the API host.
``serve(settings)`` runs it under uvicorn until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import structlog
import uvicorn
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandhaven import logs
from sandhaven.config import Settings
from sandhaven.encryption import Kek, Storage, open_storage
from sandhaven.encryption.gocryptfs import check_host
from sandhaven.encryption.kek import needs_passphrase
from sandhaven.encryption.private import kek_path, load_kek, private_tmp
from sandhaven.encryption.rotate import recover
from sandhaven.encryption.sealed import SealedApp
from sandhaven.errors import AlreadyRunning, ConfigError, EncryptionError, SandhavenError
from sandhaven.gateway import (
    ApiPreflight,
    CoalescingHttpToolsProtocol,
    GrainProxy,
    HostClassifier,
    HostKind,
    HostRouter,
    SameOriginOnly,
    Target,
    TrustedForwarded,
    UpstreamPool,
)
from sandhaven.gateway.coalesce import MAX_CONNECTIONS
from sandhaven.gateway.resolvers import ApiResolver, SessionInit, SessionResolver
from sandhaven.gateway.tuning import tune_gc, tune_malloc
from sandhaven.identity import ratelimit
from sandhaven.identity.setup import SETUP_MINUTES
from sandhaven.services import Services
from sandhaven.shell.app import create_shell
from sandhaven.supervisor import Supervisor

log = structlog.get_logger("sandhaven.server")


class AccessLog:
    """One log event per request: method, host, path (never the query string, which
    may carry a token), status, duration in milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            log.info("request", method=scope["method"], path=scope["path"], status=status,
                     host=Headers(scope=scope).get("host", "")[:200],
                     ms=round((time.perf_counter() - start) * 1000, 1))


class SupervisorActivity:
    """The gateway's activity hook, feeding the supervisor's idle clock: a request
    in flight or an open WebSocket keeps its grain running."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def request_started(self, target: Target) -> None:
        self.supervisor.request_started(target.grain_id)

    def request_finished(self, target: Target) -> None:
        self.supervisor.request_finished(target.grain_id)

    stream_opened = request_started
    stream_closed = request_finished


class Lifespan:
    """Starts the server's background parts with the ASGI lifespan and stops them
    after the last request: the supervisor (every grain is stopped cleanly on
    shutdown) and an hourly maintenance task (purge the expired trash, prune
    expired sessions and rate-limit records, remove what killed installs left;
    check the app catalog for updates at start and every 24 hours).
    A failure to start is kept in ``startup_error`` for ``serve`` to report in
    one line."""

    MAINTENANCE_EVERY = 3600.0

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.startup_error: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        maintenance: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.services.start()
                except SandhavenError as exc:
                    self.startup_error = exc
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                maintenance = asyncio.create_task(self._maintain())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if maintenance is not None:
                    maintenance.cancel()
                await self.services.close()
                if self.services.upstream is not None:
                    await self.services.upstream.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _maintain(self) -> None:
        while True:
            try:
                await self.maintain_once()
            except Exception:  # keep the loop alive; the failure is logged
                log.exception("maintenance_failed")
            await asyncio.sleep(self.MAINTENANCE_EVERY)

    async def maintain_once(self) -> None:
        svc = self.services
        purged = await svc.grains.purge_expired() if svc.grains else 0
        sessions = svc.identity.sessions.prune()
        with svc.store.session() as s:
            rates = ratelimit.prune(s)
        temporaries = svc.packages.remove_stale_temporaries()
        access_rows = svc.access_log.prune() if svc.access_log else 0
        log.info("maintenance", grains_purged=purged, sessions_pruned=sessions,
                 rate_events_pruned=rates, stale_installs_removed=temporaries,
                 access_log_pruned=access_rows)
        # A slow catalog must not hold the event loop; a failed check is logged by it.
        await asyncio.to_thread(svc.catalog.check_if_due)


def build_app(services: Services) -> Lifespan:
    """The whole ASGI app of one server, outermost first: lifespan, access log,
    trusted forwarded headers, routing by host to the shell, session hosts (init
    path, same-origin check, proxy) and the API host (preflight, proxy)."""
    settings = services.settings
    assert services.grains and services.grain_sessions and services.grain_tokens
    assert services.supervisor is not None
    classifier = HostClassifier(settings.base_url, settings.wildcard_host)
    pool = UpstreamPool()
    services.upstream = pool
    activity = SupervisorActivity(services.supervisor)
    session = SessionInit(
        SameOriginOnly(GrainProxy(SessionResolver(services.grain_sessions, services.grains),
                                  classifier=classifier, kind=HostKind.SESSION, pool=pool,
                                  activity=activity), classifier=classifier),
        services.grain_sessions, https=settings.https)
    api = ApiPreflight(GrainProxy(ApiResolver(services.grain_tokens, services.grains),
                                  classifier=classifier, kind=HostKind.API, pool=pool,
                                  activity=activity))
    router = HostRouter(create_shell(services), session, api, classifier=classifier)
    return Lifespan(AccessLog(TrustedForwarded(router, settings.trusted_proxies)), services)


class _Server(uvicorn.Server):
    """uvicorn's server, announcing the shell URL once the socket listens."""

    def __init__(self, config: uvicorn.Config, settings: Settings,
                 services: Services | None) -> None:
        super().__init__(config)
        self.settings = settings
        self.services = services

    async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        await super().startup(sockets)
        if not self.started:
            return
        base = self.settings.base_url
        if self.services is None:
            print(f"Sandhaven is sealed: enter the passphrase at {base}/unseal or run "
                  "`sandhaven unseal`.", flush=True)
        else:
            announce_setup(self.services)
        print(f"Sandhaven is serving the shell at {base}", flush=True)
        log.info("listening", base_url=base, sealed=self.services is None)


def announce_setup(services: Services) -> None:
    """Print a first-admin setup URL when the server has no users yet. Only once
    the socket listens: a setup URL must point at a server that answers."""
    if services.identity.setup.needed():
        token = services.identity.setup.new_token()
        print(f"No users yet. Create the first admin account within {SETUP_MINUTES} "
              f"minutes at:\n  {services.settings.base_url}/setup/{token}\n"
              "(`sandhaven admin-token` prints a fresh link.)", flush=True)


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on DATA_DIR/serve.lock for the life of ``serve``.

    Raises AlreadyRunning, naming the PID of the holder, if another serve has it.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = data_dir / "serve.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"Setting 'data_dir' has value '{data_dir}': not a directory.") from None
    except OSError as exc:
        raise ConfigError(f"Setting 'data_dir' has value '{data_dir}': {exc.strerror}.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise AlreadyRunning(f"Another sandhaven serve (PID {holder}) is already using the "
                                 f"data directory {data_dir}; stop it first.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def serve(settings: Settings) -> int:
    """Run the server until SIGINT or SIGTERM. Returns the exit code.

    With encryption on, the private area is mounted first (key file mode), or the
    server starts sealed (passphrase mode) and mounts it once unsealed. Raises
    EncryptionError naming what is wrong (FUSE, gocryptfs, keys)."""
    logs.configure(settings.log_level, settings.log_format)
    data_dir = Path(settings.data_dir)
    # The port first: a server that cannot listen must not make keys, mount the
    # private area or migrate the store before saying so.
    listener = listen(settings.listen_host, settings.port)
    with listener, data_dir_lock(data_dir), ExitStack() as stack:
        if settings.storage_encryption and settings.storage_key_source == "passphrase":
            app, services = _sealed_app(settings, stack), None
        else:
            storage = stack.enter_context(open_storage(settings))
            stack.enter_context(private_tmp(storage))
            services = _open_services(settings, storage, stack)
            app = build_app(services)
        log.info("starting", settings=settings.redacted())
        config = uvicorn.Config(app, host=settings.listen_host, port=settings.port,
                                log_config=None, access_log=False, lifespan="on",
                                # TrustedForwarded alone decides on X-Forwarded-*; no
                                # server or date header of uvicorn's, so grains' pass.
                                proxy_headers=False, server_header=False, date_header=False,
                                ws_max_size=64 << 20, http=CoalescingHttpToolsProtocol,
                                limit_concurrency=MAX_CONNECTIONS,
                                timeout_graceful_shutdown=10)
        server = _Server(config, settings, services)
        tune_gc()  # everything loaded at start is out of the collector's sight
        tune_malloc()  # streamed bodies reuse heap memory instead of fresh mappings
        # uvicorn re-raises the signal that stopped it once shutdown is done; with these
        # handlers in place that re-raise is a no-op and a requested stop exits 0.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        try:
            server.run(sockets=[listener])
        except SystemExit as exc:  # uvicorn exits 1 when it cannot serve the socket
            raise ConfigError(f"Cannot listen on {settings.listen_host}:{settings.port} "
                              "(address in use or not available).") from exc
        if app.startup_error is not None:
            raise app.startup_error
        if not server.started:
            raise ConfigError(f"Cannot listen on {settings.listen_host}:{settings.port} "
                              "(address in use or not available).")
        log.info("stopped")
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (an IPv6 address when ``host`` has a
    colon). Raises ConfigError when the address is in use or not available."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"Cannot listen on {host}:{port} ({why}).") from None


def _open_services(settings: Settings, storage: Storage, stack: ExitStack) -> Services:
    services = Services.build(settings, storage=storage)
    stack.callback(services.store.close)  # before the storage is unmounted
    # Commands run beside the server (admin-token) print URLs with this base.
    services.runtime.record_state("base_url", settings.base_url)
    return services


def _sealed_app(settings: Settings, stack: ExitStack) -> SealedApp:
    """Passphrase mode: check what can be checked without the passphrase (FUSE,
    gocryptfs, the key file), then serve only the unseal page."""
    data_dir = Path(settings.data_dir)
    check_host(settings.storage_gocryptfs, str(settings.storage_fuse_device))
    recover(data_dir)
    key_file = kek_path(data_dir)
    if not key_file.exists():
        load_kek(settings)  # raises: how to make one
    if not needs_passphrase(key_file):
        raise EncryptionError(f"Key file {key_file} is not sealed by a passphrase; set "
                              "storage.key_source = file, or make a sealed key file.")

    def open_server(kek: Kek) -> ASGIApp:
        storage = stack.enter_context(open_storage(settings, kek))
        stack.enter_context(private_tmp(storage))
        services = _open_services(settings, storage, stack)
        announce_setup(services)
        return build_app(services)

    return SealedApp(key_file, open_server)
