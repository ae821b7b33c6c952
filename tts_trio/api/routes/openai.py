"""OpenAI-compatible speech API: ``POST /v1/audio/speech``, ``GET /v1/models``, models and voices.

Clients written for OpenAI's text-to-speech endpoint (the official SDKs,
LLM frameworks, Home Assistant and Open WebUI integrations) work by pointing
their base URL at this server. The request schema is OpenAI's: ``model``,
``input``, ``voice``, ``response_format`` (mp3 by default, or opus, aac,
flac, wav, pcm), ``speed`` (0.25 to 4.0), ``instructions`` (accepted; the
espeak-ng engine has no use for it) and ``stream_format`` (``audio`` for
the raw file streamed as it is synthesized, ``sse`` for
``speech.audio.delta`` / ``speech.audio.done`` events).

As on OpenAI, audio is 24 kHz unless the format needs another rate (Opus
is 48 kHz); ``pcm`` is raw 16-bit little-endian mono sent as
``audio/pcm;rate=24000;channels=1`` (OpenAI's type), and the
``X-Audio-Sample-Rate`` header states the rate of every response. OpenAI's
voice names (alloy, echo, ...) map to distinct espeak-ng voices on the
``system`` engine and to the engine's default voice elsewhere (a client
that only knows OpenAI's names still speaks); the engine's own voice ids
work too. OpenAI's dated snapshots and legacy names (``tts-1-1106``,
``gpt-4o-mini-tts-2025-12-15``, ...) are aliases: clients pin them, and a
404 for a name OpenAI accepts would be a compatibility gap, not a safety.

Open WebUI asks ``GET /v1/audio/models`` for ``{"models": [{"id"}]}`` and
reads ``/v1/audio/voices``' ``voices`` as ``{"id", "name"}`` entries, so
OpenAI's voice names are listed there too (``kind`` ``openai``, with the
voice they speak with in ``maps_to``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, current_app, jsonify

from tts_trio import __version__
from tts_trio.api.json_body import read_json_body
from tts_trio.api.response_body import cache_headers, engine_headers, relayed_body, ssml_headers
from tts_trio.api.routes.sse import sse_event
from tts_trio.api.state import current_service, current_settings
from tts_trio.audio.encoding import choose_encoding
from tts_trio.engines import LoadedEngine, Voice
from tts_trio.errors import ApiError, InvalidParameter, NotFound
from tts_trio.synthesis.params import GenerateParams, parse_json_params
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics
from tts_trio.synthesis.service import TtsService

blueprint = Blueprint("openai", __name__)

#: Model names OpenAI clients send; each is served by the current engine unless TTS_MODEL_ENGINES maps it.
MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
#: OpenAI's dated snapshots and legacy names -> the model they are a version of.
MODEL_ALIASES = {
    "tts-1-1106": "tts-1",
    "tts-1-hd-1106": "tts-1-hd",
    "gpt-4o-mini-tts-2025-03-20": "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-12-15": "gpt-4o-mini-tts",
}
#: OpenAI's voice names, each given a distinct espeak-ng voice and variant.
OPENAI_VOICES = {
    "alloy": "en-us+f3",
    "ash": "en-us+m3",
    "ballad": "en-gb+m4",
    "cedar": "en-us+m5",
    "coral": "en-us+f4",
    "echo": "en-us+m1",
    "fable": "en-gb+m3",
    "marin": "en-us+f5",
    "nova": "en-us+f2",
    "onyx": "en-us+m7",
    "sage": "en-gb+f2",
    "shimmer": "en-us+f1",
    "verse": "en-us+m2",
}
#: OpenAI's output rate for every format that allows it.
OPENAI_RATE = 24000
_CREATED = 1767225600  # 2026-01-01, a fixed "created" for the model list
# Our parameter names in error messages -> OpenAI's.
_FIELD_NAMES = {"text": "input", "voice_id": "voice", "output_format": "response_format"}


@attrs.frozen(kw_only=True)
class SpeechRequest:
    """OpenAI's ``audio.speech.create`` body."""

    model: str
    input: str
    voice: str
    response_format: str = "mp3"
    speed: float = 1.0
    instructions: str | None = None
    stream_format: str = "audio"


def _openai_error(error: ApiError) -> ApiError:
    """A new error of the same class naming OpenAI's fields and carrying OpenAI's ``type``/``param``."""
    message = error.message
    for ours, theirs in _FIELD_NAMES.items():
        message = message.replace(f"{ours}:", f"{theirs}:").replace(f"{ours} ", f"{theirs} ")
    field = error.details.get("field")
    param = _FIELD_NAMES.get(field, field) if isinstance(field, str) else None
    details: dict[str, Any] = {"type": "invalid_request_error", "param": param}
    if field is not None:
        details["field"] = details["param"]
    return error.reworded(message, **details)


def canonical_model(model: str, engines: Sequence[str], mapped: Mapping[str, str] | None = None) -> str | None:
    """The model a name stands for (itself, or what an alias is a version of); None for an unknown name.

    Every loaded engine's name is a model too (``engines``), so a client can
    pick an engine, or say which one it expects and get a 404 after a
    switch instead of another voice; so is every model ``TTS_MODEL_ENGINES``
    maps (``mapped``).
    """
    if model in MODELS or model in engines or model in (mapped or {}):
        return model
    return MODEL_ALIASES.get(model)


def model_names(engines: Sequence[str], mapped: Mapping[str, str] | None = None) -> list[str]:
    """Every name ``/v1/audio/speech`` accepts, in the order the listings give them."""
    return list(dict.fromkeys([*MODELS, *MODEL_ALIASES, *(mapped or {}), *engines]))


def _served_names(service: TtsService) -> tuple[list[str], dict[str, str]]:
    """The loaded engines (the current one first) and the model mapping: what the model names are made of."""
    loaded = [service.engine.name, *sorted(set(service.engines.loaded()) - {service.engine.name})]
    return loaded, current_settings().model_engine_map


def engine_for_model(model: str, service: TtsService) -> LoadedEngine:
    """The engine serving ``model``: the engine of that name, the one TTS_MODEL_ENGINES maps it to, or the current."""
    loaded = service.engines.loaded()
    if model in loaded:
        return loaded[model]
    mapped = current_settings().model_engine_map
    name = mapped.get(model) or mapped.get(MODEL_ALIASES.get(model, model))
    return service.engines.named(name) if name is not None else service.engine


def _voice_id(voice: str, engine: LoadedEngine) -> str:
    """Our voice for an OpenAI voice name: an espeak-ng voice on ``system``, the default voice elsewhere."""
    mapped = OPENAI_VOICES.get(voice.lower())
    if mapped is None:
        return voice
    return mapped if engine.name == "system" else "default"


def _parse(body: Any, service: TtsService) -> tuple[SpeechRequest, GenerateParams]:
    if not isinstance(body, dict):
        raise InvalidParameter("the request must be a JSON object")
    known = {field.name for field in attrs.fields(SpeechRequest)}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidParameter(f"unknown field(s): {', '.join(unknown)}")
    for name in ("model", "input", "voice"):
        if name not in body:
            raise InvalidParameter(f"{name}: required field missing", field=name)
    model, voice = body["model"], body["voice"]
    if not isinstance(model, str) or not isinstance(voice, str):
        raise InvalidParameter(
            "model and voice must be strings", field="model" if not isinstance(model, str) else "voice"
        )
    if canonical_model(model, *_served_names(service)) is None:
        raise NotFound(f"model {model!r} does not exist; GET /v1/models lists them", field="model")
    engine = engine_for_model(model, service)
    stream_format = body.get("stream_format", "audio")
    if stream_format not in ("audio", "sse"):
        raise InvalidParameter("stream_format: must be audio or sse", field="stream_format")
    instructions = body.get("instructions")
    if instructions is not None and (not isinstance(instructions, str) or len(instructions) > 4096):
        raise InvalidParameter("instructions: must be a string of at most 4096 characters", field="instructions")
    response_format = body.get("response_format", "mp3")
    params = parse_json_params(
        GenerateParams,
        {
            "text": body["input"],
            "voice_id": _voice_id(voice, engine),
            "output_format": response_format,
            "speed": body.get("speed", 1.0),
            "engine": engine.name,
        },
        max_text_chars=current_settings().max_text_chars,
    )
    request = SpeechRequest(
        model=model,
        input=params.text,
        voice=voice,
        response_format=params.output_format,
        speed=params.speed,
        instructions=instructions,
        stream_format=stream_format,
    )
    return request, params


@blueprint.post("/v1/audio/speech")
async def speech() -> Any:
    settings = current_settings()
    service = current_service()
    try:
        body = await read_json_body(settings.max_body_bytes)
        request, params = _parse(body, service)
        job = service.job(params)
        rate = OPENAI_RATE if params.output_format != "opus" else 48000
        choice = choose_encoding(params.output_format, rate, job.pool.audio_format)
    except ApiError as error:
        raise _openai_error(error) from None
    nursery: trio.Nursery = current_app.nursery  # type: ignore[attr-defined]
    try:
        place = await service.admission.acquire()
    except ApiError as error:
        raise _openai_error(error) from None
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        **choice.headers(job.pool.audio_format),
        **ssml_headers(job),
        **cache_headers(job),
        **engine_headers(job),
    }
    if request.stream_format == "sse":
        body = relayed_body(nursery, service, job, choice, place, _SseWriter(len(job.text.split())), protocol="openai")
        response = Response(body, mimetype="text/event-stream", headers=headers)
    else:
        body = relayed_body(nursery, service, job, choice, place, _AudioWriter(), protocol="openai")
        response = Response(body, mimetype=choice.content_type, headers=headers)
    place.bind(body)  # a body that never runs still gives its place back
    response.timeout = None
    return response


@attrs.frozen
class _AudioWriter:
    """The raw file as it is encoded; an error can only end the body early (the headers are gone)."""

    chunk_size: None = None
    message_overhead: int = 0

    def audio(self, piece: bytes, index: int) -> bytes:
        return piece

    def timings(self, timings: SentenceTimings) -> None:
        return None

    def error(self, error: StreamError) -> None:
        return None  # a truncated file; the server log has the cause

    def finished(self, metrics: StreamMetrics) -> Sequence[bytes]:
        return ()


@attrs.frozen
class _SseWriter:
    """OpenAI's events: ``speech.audio.delta`` per encoded chunk, ``speech.audio.done`` with usage."""

    tokens: int
    chunk_size: None = None
    message_overhead: int = 0

    def audio(self, piece: bytes, index: int) -> bytes:
        return _event({"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()})

    def timings(self, timings: SentenceTimings) -> None:
        return None

    def error(self, error: StreamError) -> bytes:
        return _event({"type": "error", "error": {"code": error.code, "message": error.message}})

    def finished(self, metrics: StreamMetrics) -> Sequence[bytes]:
        usage = {"input_tokens": self.tokens, "output_tokens": 0, "total_tokens": self.tokens}
        return (_event({"type": "speech.audio.done", "usage": usage}),)


def _event(payload: dict[str, Any]) -> bytes:
    return sse_event(str(payload["type"]), payload)


@blueprint.get("/v1/models")
async def models() -> Any:
    names = model_names(*_served_names(current_service()))
    return jsonify(
        {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": _CREATED, "owned_by": "tts-trio"} for name in names],
        }
    )


@blueprint.get("/v1/models/<model>")
async def model(model: str) -> Any:
    service = current_service()
    if canonical_model(model, *_served_names(service)) is None:
        raise NotFound(f"model {model!r} does not exist", field="model")
    return jsonify({"id": model, "object": "model", "created": _CREATED, "owned_by": "tts-trio"})


@blueprint.get("/v1/audio/models")
async def audio_models() -> Any:
    """The model names in the shape Open WebUI reads (``{"models": [{"id"}]}``) to fill its model menu."""
    return jsonify({"models": [{"id": name} for name in model_names(*_served_names(current_service()))]})


def openai_voice_entries(service: TtsService) -> list[dict[str, Any]]:
    """OpenAI's voice names as voice-list entries, each naming the voice it speaks with.

    Clients such as Open WebUI only offer what ``voices`` lists; without these
    their default ``alloy`` is missing from the menu although the route
    accepts it. A name the engine itself has as a voice id is left to the
    engine's own entry.
    """
    entries = []
    for name, mapped in OPENAI_VOICES.items():
        if name in service.voices:
            continue
        target = _voice_id(name, service.engine)
        language, _, variant = target.partition("+")
        gender = {"f": "female", "m": "male"}.get(variant[:1], "unknown")
        voice = Voice(
            id=name,
            name=f"{name} ({target})",
            kind="openai",
            language=language if target == mapped else "",
            gender=gender,
        )
        entries.append({**attrs.asdict(voice), "maps_to": target})
    return entries


@blueprint.get("/v1/audio/voices")
async def voices() -> Any:
    """The engine's voices, OpenAI's names as voices too, its variants, and the OpenAI mapping."""
    service = current_service()
    return jsonify(
        {
            "engine": service.pool.name,
            "default": service.default_voice,
            "voices": [*(attrs.asdict(voice) for voice in service.voices.values()), *openai_voice_entries(service)],
            "variants": sorted(service.variants),
            "openai_voices": OPENAI_VOICES,
            "version": __version__,
        }
    )
