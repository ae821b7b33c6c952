"""``tts-trio serve``: settings from flags and the environment, checked before anything starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import trio
import typer

from tts_trio.engines import catalog_entry
from tts_trio.errors import UnknownEngine
from tts_trio.settings import LOG_LEVELS, Settings, SettingsError, load_keys


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [env TTS_HOST; default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [env TTS_PORT; default 8000]")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine to start [env TTS_ENGINE; default system]")] = None,
    voices_path: Annotated[
        Path | None, typer.Option(help="Voice directory [env TTS_VOICES_PATH; default ./voices]")
    ] = None,
    slots: Annotated[
        int | None, typer.Option(help="Concurrent synthesis slots [env TTS_SLOTS; default: CPU cores]")
    ] = None,
    model_type: Annotated[str | None, typer.Option(help="Chatterbox model variant [env CHATTERBOX_MODEL_TYPE]")] = None,
    config: Annotated[Path | None, typer.Option(help="A hypercorn.toml to take server settings from")] = None,
    log_level: Annotated[str | None, typer.Option(help=f"One of {', '.join(LOG_LEVELS)} [env TTS_LOG_LEVEL]")] = None,
    debug: Annotated[bool | None, typer.Option("--debug", help="Verbose logging")] = None,
    certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate chain (PEM); serves HTTPS with h2 [env TTS_CERTFILE]")
    ] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM) [env TTS_KEYFILE]")] = None,
    graceful_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds open streams get after SIGTERM [env TTS_GRACEFUL_TIMEOUT; default 5]"),
    ] = None,
    backlog: Annotated[
        int | None,
        typer.Option(
            help="Connections the kernel may queue before they are accepted; capped at net.core.somaxconn "
            "[env TTS_BACKLOG; default 2048]"
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            help="HTTP requests and WebSockets open at once; more get 503 (never /health, /ready, /metrics); 0: no cap "
            "[env TTS_MAX_CONNECTIONS; default: half the open-files limit, 4096 at most]"
        ),
    ] = None,
    wyoming_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve Wyoming (Home Assistant) on this port, 10200 usually [env TTS_WYOMING_PORT; default off]"
        ),
    ] = None,
    wyoming_host: Annotated[
        str | None, typer.Option(help="Address of the Wyoming listener [env TTS_WYOMING_HOST; default: --host]")
    ] = None,
    wyoming_zeroconf: Annotated[
        bool | None,
        typer.Option("--wyoming-zeroconf", help="Announce the Wyoming listener over mDNS [env TTS_WYOMING_ZEROCONF]"),
    ] = None,
) -> None:
    """Start the server and run until SIGTERM or SIGINT."""
    from tts_trio.server import hypercorn_fixes
    from tts_trio.server.launch import configure_logging, hypercorn_config
    from tts_trio.server.launch import serve as run_server

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "engine": engine,
        "voices_path": voices_path,
        "slots": slots,
        "chatterbox_model_type": model_type,
        "log_level": "debug" if debug else log_level,
        "debug": debug,
        "certfile": certfile,
        "keyfile": keyfile,
        "graceful_timeout": graceful_timeout,
        "backlog": backlog,
        "max_connections": max_connections,
        "wyoming_port": wyoming_port,
        "wyoming_host": wyoming_host,
        "wyoming_zeroconf": wyoming_zeroconf,
    }
    try:
        settings = Settings.load(overrides)
        load_keys(settings)
        entry = catalog_entry(settings.engine)
        availability = entry.availability(settings)
        if not availability.available:
            raise SettingsError(f"engine {entry.name!r} cannot start here: {availability.reason}")
        if config is not None and not config.is_file():
            raise SettingsError(f"invalid setting --config: no file {str(config)!r}")
        # An address given as a flag or in the environment replaces the config file's bind.
        bind_given = host is not None or port is not None or any(os.environ.get(v) for v in ("TTS_HOST", "TTS_PORT"))
        hc_config = hypercorn_config(settings, config, bind_given=bind_given)
        # Checked with the settings: a fix that does not match this Hypercorn stops start-up the same way.
        configure_logging(settings.log_level, settings.log_format)  # so that 'unverified' warnings show
        hypercorn_fixes.install(settings.hypercorn_fixes)
    except (SettingsError, UnknownEngine, hypercorn_fixes.FixMismatch) as error:
        typer.echo(f"tts-trio: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        trio.run(run_server, settings, hc_config)
    except Exception as error:  # start-up failures: port in use, engine cannot start
        typer.echo(f"tts-trio: could not serve: {error}", err=True)
        raise typer.Exit(1) from None
