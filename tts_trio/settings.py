"""Server settings: one frozen, validated attrs object built once at start-up.

Precedence is defaults < environment variables < command-line flags that
were actually given. Nothing reads ``os.environ`` after :meth:`Settings.load`
returns, so tests and several apps in one process never share state through
the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs

#: Environment variable for each setting (the original API's names where it has one).
ENV_VARS: dict[str, str] = {
    "host": "TTS_HOST",
    "port": "TTS_PORT",
    "engine": "TTS_ENGINE",
    "engines": "TTS_ENGINES",
    "model_engines": "TTS_MODEL_ENGINES",
    "voices_path": "TTS_VOICES_PATH",
    "slots": "TTS_SLOTS",
    "max_text_chars": "TTS_MAX_TEXT_CHARS",
    "max_body_bytes": "TTS_MAX_BODY_BYTES",
    "max_sentence_chars": "TTS_MAX_SENTENCE_CHARS",
    "ws_max_queued": "TTS_WS_MAX_QUEUED",
    "max_streams": "TTS_MAX_STREAMS",
    "sentence_timeout": "TTS_SENTENCE_TIMEOUT",
    "max_queue": "TTS_MAX_QUEUE",
    "max_queue_wait": "TTS_MAX_QUEUE_WAIT",
    "max_upload_bytes": "TTS_MAX_UPLOAD_BYTES",
    "voice_min_seconds": "TTS_VOICE_MIN_SECONDS",
    "voice_max_seconds": "TTS_VOICE_MAX_SECONDS",
    "ws_max_message_bytes": "TTS_WS_MAX_MESSAGE_BYTES",
    "graceful_timeout": "TTS_GRACEFUL_TIMEOUT",
    "backlog": "TTS_BACKLOG",
    "max_connections": "TTS_MAX_CONNECTIONS",
    "gc_tuning": "TTS_GC_TUNING",
    "send_timeout": "TTS_SEND_TIMEOUT",
    "context_idle_timeout": "TTS_CONTEXT_IDLE_TIMEOUT",
    "wyoming_port": "TTS_WYOMING_PORT",
    "wyoming_host": "TTS_WYOMING_HOST",
    "wyoming_zeroconf": "TTS_WYOMING_ZEROCONF",
    "ssml_strict": "TTS_SSML_STRICT",
    "cache_bytes": "TTS_CACHE_BYTES",
    "fleet_poll": "TTS_FLEET_POLL",
    "certfile": "TTS_CERTFILE",
    "keyfile": "TTS_KEYFILE",
    "log_level": "TTS_LOG_LEVEL",
    "log_format": "TTS_LOG_FORMAT",
    "debug": "TTS_DEBUG",
    "hypercorn_fixes": "TTS_HYPERCORN_FIXES",
    "chatterbox_model_type": "CHATTERBOX_MODEL_TYPE",
    "piper_voices_path": "TTS_PIPER_VOICES_PATH",
    "api_keys": "TTS_API_KEYS",
    "api_keys_file": "TTS_API_KEYS_FILE",
    "admin_keys": "TTS_ADMIN_KEYS",
    "cors_origins": "TTS_CORS_ORIGINS",
    "azure_speech_key": "AZURE_SPEECH_KEY",
    "azure_speech_region": "AZURE_SPEECH_REGION",
    "elevenlabs_api_key": "ELEVENLABS_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
}

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
#: Long enough for a typical answer to finish; short enough for a rolling restart.
DEFAULT_GRACEFUL_TIMEOUT = 5.0
#: Connections the kernel may queue before they are accepted (Hypercorn's own default is 100).
#: A burst of 3,000 WebSocket handshakes on loopback overflowed 100 and had up to a third of
#: them time out; the kernel caps the value at net.core.somaxconn (4096 on Linux 5.4+).
DEFAULT_BACKLOG = 2048
#: Cap on HTTP requests and WebSockets in flight when ``max_connections`` is not given: at most
#: this many, and at most half the open-files limit (RLIMIT_NOFILE), so descriptors remain for
#: idle keep-alive connections, engines and files (see tts_trio.server.connection_limit).
DEFAULT_MAX_CONNECTIONS = 4096


class SettingsError(Exception):
    """Raised when a setting is invalid; the message is one line naming it."""


class _InvalidField(ValueError):
    """Raised by a validator; carries the field so the message can name its source."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _between(low: float, high: float) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not low <= value <= high:
            raise _InvalidField(attribute.name, f"must be between {low:g} and {high:g}, got {value!r}")

    return check


def _one_of(*choices: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise _InvalidField(attribute.name, f"must be one of {', '.join(choices)}, got {value!r}")

    return check


def _not_blank(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise _InvalidField(attribute.name, "must not be empty")


def _engine_list(name: str, value: str) -> list[str]:
    engines = [item.strip() for item in value.split(",") if item.strip()]
    for engine in engines:
        if not engine.replace("_", "").replace("-", "").isalnum():
            raise _InvalidField(name, f"expected engine names separated by commas, got {engine!r}")
    return engines


def _model_map(name: str, value: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        model, equals, engine = (side.strip() for side in item.partition("="))
        if not equals or not model or not engine:
            raise _InvalidField(name, f"expected MODEL=ENGINE pairs separated by commas, got {item!r}")
        _engine_list(name, engine)
        mapping[model] = engine
    return mapping


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the server can be configured with."""

    host: str = attrs.field(default="127.0.0.1", validator=_not_blank)
    port: int = attrs.field(default=8000, validator=_between(0, 65535))
    engine: str = attrs.field(default="system", validator=_not_blank)
    #: More engines to keep loaded besides the current one (comma-separated), each with its own slots;
    #: a request picks one with ``engine`` (or OpenAI's ``model``). They stay loaded across switches.
    engines: str = attrs.field(default="", validator=lambda i, a, v: _engine_list(a.name, v))
    #: OpenAI model names served by a given engine (``tts-1=system,tts-1-hd=piper``); the engines named
    #: are kept loaded too. A model not mapped is served by the current engine.
    model_engines: str = attrs.field(default="", validator=lambda i, a, v: _model_map(a.name, v))
    voices_path: Path = Path("./voices")
    #: Concurrent synthesis slots; ``None`` derives it from the hardware.
    slots: int | None = attrs.field(default=None, validator=_between(1, 256))
    max_text_chars: int = attrs.field(default=20_000, validator=_between(1, 1_000_000))
    max_body_bytes: int = attrs.field(default=1 << 20, validator=_between(1024, 1 << 30))
    #: Longer sentences are cut at a word boundary so one sentence never
    #: holds a slot (or delays cancellation) for long.
    max_sentence_chars: int = attrs.field(default=400, validator=_between(20, 100_000))
    ws_max_queued: int = attrs.field(default=8, validator=_between(0, 1000))
    #: Longest one sentence may take before the stream ends with an error and the engine is marked unhealthy.
    sentence_timeout: float = attrs.field(default=60.0, validator=_between(0.1, 3600))
    #: Streams synthesizing at once (all protocols); more wait in a bounded queue.
    max_streams: int = attrs.field(default=64, validator=_between(1, 100_000))
    max_queue: int = attrs.field(default=64, validator=_between(0, 100_000))
    max_queue_wait: float = attrs.field(default=10.0, validator=_between(0, 3600))
    #: Voice uploads: counted while reading, with or without Content-Length.
    max_upload_bytes: int = attrs.field(default=20 << 20, validator=_between(1024, 1 << 31))
    voice_min_seconds: float = attrs.field(default=3.0, validator=_between(0.1, 600))
    voice_max_seconds: float = attrs.field(default=30.0, validator=_between(0.5, 3600))
    ws_max_message_bytes: int = attrs.field(default=1 << 20, validator=_between(1024, 1 << 30))
    #: Seconds open streams get after SIGTERM; ``None``: the Hypercorn config's
    #: value if one is given, else :data:`DEFAULT_GRACEFUL_TIMEOUT`.
    graceful_timeout: float | None = attrs.field(default=None, validator=_between(0, 3600))
    #: Listen backlog; ``None``: the Hypercorn config's value if one is given, else
    #: :data:`DEFAULT_BACKLOG`. The kernel silently caps it at net.core.somaxconn.
    backlog: int | None = attrs.field(default=None, validator=_between(1, 65535))
    #: HTTP requests and WebSockets in flight above which new ones are refused with 503
    #: (never ``/health``, ``/ready``, ``/metrics``); ``0``: no cap; ``None``: derived
    #: from the open-files limit (:data:`DEFAULT_MAX_CONNECTIONS` at most).
    max_connections: int | None = attrs.field(default=None, validator=_between(0, 100_000))
    #: Freeze start-up objects and run full garbage collections ~14 times less often once ready
    #: (tts_trio.server.collector): pongs at p99 84-188 ms instead of 430-720 ms with 1,000 sockets.
    #: ``false``: Python's own settings.
    gc_tuning: bool = True
    #: A client that reads nothing for this long is disconnected (its stream cancelled).
    send_timeout: float = attrs.field(default=30.0, validator=_between(0.1, 3600))
    #: A text-in context that gets no append, flush or end for this long is ended (it holds a stream place).
    context_idle_timeout: float = attrs.field(default=60.0, validator=_between(0.1, 86400))
    #: The Wyoming listener (Home Assistant's voice protocol, docs/wyoming.md): off unless a port is given
    #: (10200 by convention; 0 picks a free one). Its address defaults to ``host``.
    wyoming_port: int | None = attrs.field(default=None, validator=_between(0, 65535))
    wyoming_host: str | None = None
    #: Announce the Wyoming listener over mDNS (``_wyoming._tcp``); needs the ``zeroconf`` extra.
    wyoming_zeroconf: bool = False
    #: Malformed SSML, unknown elements and attributes: a 422 (true) or spoken as plain text with a warning.
    ssml_strict: bool = True
    #: The phrase cache (tts_trio.synthesis.cache, docs/cache.md): bytes of recent streams' PCM kept so an
    #: identical request is answered from memory; ``0`` switches it off.
    cache_bytes: int = attrs.field(default=64 << 20, validator=_between(0, 1 << 40))
    #: Seconds between looks at the fleet's desired engine on the shared store (tts_trio.synthesis.fleet,
    #: docs/scaling.md): an engine switch on any replica reaches every replica on the store within it.
    #: ``0``: switches stay on the replica that was asked, and none is recorded.
    fleet_poll: float = attrs.field(default=1.0, validator=_between(0, 3600))
    #: TLS certificate chain and key (PEM); with both, every bind serves HTTPS
    #: and ALPN offers h2 and http/1.1.
    certfile: Path | None = None
    keyfile: Path | None = None
    log_level: str = attrs.field(default="info", validator=_one_of(*LOG_LEVELS))
    #: ``text`` for people, ``json`` (one object per line) for log shippers.
    log_format: str = attrs.field(default="text", validator=_one_of("text", "json"))
    debug: bool = False
    #: How the Hypercorn 0.18 fixes are installed (tts_trio.server.hypercorn_fixes; docs/hypercorn.md):
    #: ``verify`` refuses to start when one does not match the installed Hypercorn, ``unverified``
    #: applies them anyway with a warning, ``off`` applies none. The ASGI entry (bare ``hypercorn``)
    #: reads the same variable itself, because it installs the fixes before any Settings exist.
    hypercorn_fixes: str = attrs.field(default="verify", validator=_one_of("verify", "unverified", "off"))
    #: RealtimeTTS 0.8.10's ChatterboxEngine has only the turbo model.
    chatterbox_model_type: str = "turbo"
    #: A folder of Piper voices (``*.onnx`` with ``*.onnx.json`` beside them, subfolders too), besides
    #: the installed voice packages; what ``python -m piper.download_voices --data-dir`` writes.
    piper_voices_path: Path | None = None
    #: Comma-separated API keys (and one per line in ``api_keys_file``); empty: no keys needed.
    api_keys: str = attrs.field(default="", repr=False)
    api_keys_file: Path | None = None
    admin_keys: str = attrs.field(default="", repr=False)
    #: Comma-separated origins allowed to call the API from a browser; ``*`` for any.
    cors_origins: str = ""
    azure_speech_key: str | None = attrs.field(default=None, repr=False)
    azure_speech_region: str | None = None
    elevenlabs_api_key: str | None = attrs.field(default=None, repr=False)
    openai_api_key: str | None = attrs.field(default=None, repr=False)

    @property
    def resident_engines(self) -> list[str]:
        """The engines kept loaded besides the current one: ``engines`` and those ``model_engines`` names."""
        names = [*_engine_list("engines", self.engines), *self.model_engine_map.values()]
        return list(dict.fromkeys(names))

    @property
    def model_engine_map(self) -> dict[str, str]:
        return _model_map("model_engines", self.model_engines)

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from ``environ`` (default: the process environment) and overrides.

        ``overrides`` holds command-line values; ``None`` values mean "not
        given" and do not hide the environment.
        """
        environ = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        source: dict[str, str] = {}
        for name, var in ENV_VARS.items():
            value = environ.get(var)
            if value is not None and value != "":
                raw[name] = value
                source[name] = var
        for name, value in (overrides or {}).items():
            if name not in ENV_VARS:
                raise SettingsError(f"unknown setting {name!r}")
            if value is not None:
                raw[name] = value
                source[name] = "--" + name.replace("_", "-")
        try:
            return _converter.structure(raw, cls)
        except cattrs.ClassValidationError as group:
            raise SettingsError(_first_message(group, source)) from None
        except _InvalidField as error:
            label = source.get(error.field, error.field)
            raise SettingsError(f"invalid setting {label}: {error}") from None


def _first_message(group: cattrs.ClassValidationError, source: dict[str, str]) -> str:
    with_notes, others = group.group_exceptions()
    found: list[tuple[str, BaseException]] = [(str(note.name), exc) for exc, note in with_notes]
    found += [(exc.field, exc) for exc in others if isinstance(exc, _InvalidField)]
    if not found:
        return f"invalid settings: {'; '.join(str(exc) for exc in others)}"
    name, exc = found[0]
    return f"invalid setting {source.get(name, name)}: {exc}"


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    raise ValueError(f"expected an integer, got {value!r}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(int, _structure_int)
_converter.register_structure_hook(float, _structure_float)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(Path, lambda value, _: Path(_structure_str(str(value), str)))


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


def load_keys(settings: Settings) -> tuple[list[str], list[str]]:
    """(API keys, admin keys) from the settings and the keys file (read once, at start-up)."""
    users = _split(settings.api_keys)
    if settings.api_keys_file is not None:
        try:
            users += _split(settings.api_keys_file.read_text(encoding="utf-8"))
        except OSError as error:
            raise SettingsError(f"invalid setting TTS_API_KEYS_FILE: cannot read it ({error.strerror})") from None
    return users, _split(settings.admin_keys)


def cors_origins(settings: Settings) -> tuple[str, ...]:
    return tuple(_split(settings.cors_origins))
