"""Running the app under Hypercorn's trio worker, with clean signal handling.

``hypercorn.trio.serve`` installs no signal handlers of its own, so
:func:`serve` passes a shutdown trigger that waits for SIGTERM or SIGINT:
Hypercorn then stops accepting, lets open requests finish within
``graceful_timeout``, and runs the app's shutdown, which stops every engine.
The trigger also starts the app's drain (:mod:`tts_trio.synthesis.drain`) so that
streams still running end with a final event instead of being cut.
"""

from __future__ import annotations

import logging
import signal
import ssl
import tomllib
from pathlib import Path

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from tts_trio.api.app import create_app
from tts_trio.observability import JsonFormatter, RequestIdFilter
from tts_trio.server import allocator, collector, connection_limit, hypercorn_fixes, memory
from tts_trio.server.shutdown_trigger import check_one_worker, draining_trigger
from tts_trio.settings import DEFAULT_BACKLOG, DEFAULT_GRACEFUL_TIMEOUT, Settings, SettingsError

log = logging.getLogger(__name__)


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def hypercorn_config(settings: Settings, config_file: Path | None = None, *, bind_given: bool = True) -> Config:
    """Hypercorn settings: from ``config_file`` if given; our settings win where they were given."""
    config = Config.from_toml(str(config_file)) if config_file else Config()
    if bind_given or not config_file:
        config.bind = [bind_address(settings.host, settings.port)]
    config.worker_class = "trio"
    check_one_worker(config, f"in {config_file}")
    if settings.graceful_timeout is not None:
        config.graceful_timeout = settings.graceful_timeout
    elif not config_file or "graceful_timeout" not in _keys_of(config_file):
        config.graceful_timeout = DEFAULT_GRACEFUL_TIMEOUT  # ours, not Hypercorn's 3 s
    if settings.backlog is not None:
        config.backlog = settings.backlog
    elif not config_file or "backlog" not in _keys_of(config_file):
        config.backlog = DEFAULT_BACKLOG  # ours, not Hypercorn's 100 (a burst of handshakes overflows it)
    _configure_tls(config, settings)
    config.websocket_max_message_size = settings.ws_max_message_bytes
    # Room for the longest text in an SSE query string (URL-encoded, up to 3 bytes a character).
    config.h11_max_incomplete_size = max(config.h11_max_incomplete_size, 3 * settings.max_text_chars + 8192)
    if config.loglevel is None or not config_file:
        config.loglevel = settings.log_level.upper()
    return config


def _keys_of(config_file: Path) -> set[str]:
    with config_file.open("rb") as handle:
        return set(tomllib.load(handle))


def _configure_tls(config: Config, settings: Settings) -> None:
    """TLS from the settings (they win over the config file); checked now, so a bad file stops start-up."""
    if (settings.certfile is None) != (settings.keyfile is None):
        raise SettingsError("invalid setting --certfile/--keyfile: give both the certificate and its key, or neither")
    if settings.certfile is not None and settings.keyfile is not None:
        config.certfile, config.keyfile = str(settings.certfile), str(settings.keyfile)
    if not config.ssl_enabled:
        return
    try:
        config.create_ssl_context()
    except OSError as error:  # ssl.SSLError is one too
        reason = str(error) if isinstance(error, ssl.SSLError) or not error.strerror else error.strerror
        raise SettingsError(f"invalid TLS certificate or key ({config.certfile}, {config.keyfile}): {reason}") from None


async def serve(settings: Settings, config: Config) -> None:
    """Serve until SIGTERM or SIGINT; later signals while draining are logged, not a traceback.

    ``tts-trio serve`` has installed the Hypercorn fixes already (so that a
    mismatch is reported like a bad setting); installing is idempotent, and
    a caller that did not gets them checked here.
    """
    hypercorn_fixes.install(settings.hypercorn_fixes)
    app = create_app(settings)
    collector.install(app, settings.gc_tuning)
    max_connections = connection_limit.effective_max_connections(settings)
    connections = connection_limit.install(app, max_connections)
    for warning in connection_limit.start_up_warnings(config.backlog, max_connections):
        log.warning("%s", warning)
    log.info(
        "listen backlog %d, connection cap %s, allocator %s",
        config.backlog,
        max_connections or "none",
        allocator.current_allocator(),
    )
    received = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

        async def watch() -> None:
            async for signum in signals:
                name = signal.Signals(signum).name
                if received.is_set():
                    log.info("received %s again; still shutting down (within %g s)", name, config.graceful_timeout)
                else:
                    log.info("received %s, shutting down", name)
                    received.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            # After a connection peak, hand back what glibc's heap can (see tts_trio.server.memory).
            nursery.start_soon(memory.trim_after_peaks, lambda: connections.open)
            trigger = draining_trigger(app, received.wait, config.graceful_timeout)
            await hypercorn_serve(app, config, shutdown_trigger=trigger)  # type: ignore[arg-type]
            nursery.cancel_scope.cancel()


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log our own messages to stderr; Hypercorn keeps its own handlers (no duplicates)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] [%(request_id)s] %(name)s: %(message)s")
        )
    logger = logging.getLogger("tts_trio")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
