"""ElevenLabs-compatible text-to-speech REST routes (``POST /v1/text-to-speech/{voice_id}[/stream]``).

Clients written for ElevenLabs (its SDK's ``text_to_speech.convert`` and
``stream``, LiveKit's plugin for its non-streaming ``synthesize``) work by
pointing their base URL here. ElevenLabs names the audio as
``codec_rate[_bitrate]`` (``mp3_44100_128``, ``pcm_24000``, ``ulaw_8000``,
``opus_48000_64``); each maps onto one of our encodings at that rate (the
bitrate is not configurable here and is ignored). ``ulaw`` is G.711 mu-law
made here from 8 kHz PCM, since the shared encoders have no such format.

A voice id the engine knows selects that voice; any other id (ElevenLabs'
own ids such as ``21m00Tcm4TlvDq8N2WB2``) and every ``model_id`` speak
with the current engine's default voice, so a client that only knows
ElevenLabs' names still speaks. ``voice_settings.speed`` is honoured; the
other voice settings have no meaning for our engines and are accepted.

Errors carry both ElevenLabs' ``{"detail": {"status", "message"}}`` and our
``{"error": {"code", "message"}}``, with our 4xx status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, current_app, jsonify, request

from tts_trio.api.json_body import read_json_body
from tts_trio.api.response_body import relayed_body
from tts_trio.api.state import current_service, current_settings
from tts_trio.audio.encoding import EncodingChoice, choose_encoding
from tts_trio.audio.g711 import to_mulaw
from tts_trio.errors import ApiError, InvalidParameter, VoiceNotFound
from tts_trio.synthesis.params import GenerateParams, parse_json_params
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics
from tts_trio.synthesis.service import TtsService

blueprint = Blueprint("elevenlabs", __name__)

#: ElevenLabs' codec names -> (our format, the content type ElevenLabs' clients expect).
_CODECS = {
    "mp3": ("mp3", "audio/mpeg"),
    "pcm": ("pcm", "audio/pcm"),
    "ulaw": ("pcm", "audio/basic"),
    "opus": ("opus", "audio/ogg"),
}
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
#: Body fields ElevenLabs defines; accepted, and only text, voice_settings.speed used.
_BODY_FIELDS = {
    "text", "model_id", "language_code", "voice_settings", "pronunciation_dictionary_locators", "seed",
    "previous_text", "next_text", "previous_request_ids", "next_request_ids", "use_pvc_as_ivc",
    "apply_text_normalization", "apply_language_text_normalization", "audio_effects",
}  # fmt: skip


@attrs.frozen
class ElevenFormat:
    """An ElevenLabs ``output_format``: what we encode, and how it is labelled."""

    name: str
    choice: EncodingChoice
    content_type: str
    ulaw: bool


def parse_output_format(name: str, service: TtsService) -> ElevenFormat:
    """``mp3_44100_128`` and the like; raises :class:`InvalidParameter` naming what is wrong."""
    codec, _, rest = name.partition("_")
    rate_text = rest.partition("_")[0]
    if codec not in _CODECS or not rate_text.isdigit():
        raise InvalidParameter(
            f"output_format: {name[:40]!r} is not codec_rate[_bitrate] with codec mp3, pcm, ulaw or opus",
            field="output_format",
        )
    ours, content_type = _CODECS[codec]
    rate = int(rate_text)
    if codec == "ulaw" and rate != 8000:
        raise InvalidParameter("output_format: ulaw is only 8000 Hz", field="output_format")
    choice = choose_encoding(ours, rate, service.pool.audio_format)
    return ElevenFormat(name, choice, content_type, codec == "ulaw")


def voice_for(voice_id: str, service: TtsService) -> str:
    """Our voice for an ElevenLabs voice id: itself when the engine knows it, else the default voice."""
    try:
        service.resolve_voice(voice_id)
    except (VoiceNotFound, ApiError):
        return "default"
    return voice_id


def speed_of(voice_settings: Any) -> float:
    if voice_settings is None:
        return 1.0
    if not isinstance(voice_settings, dict):
        raise InvalidParameter("voice_settings: must be an object", field="voice_settings")
    speed = voice_settings.get("speed", 1.0)
    if speed is None:
        return 1.0
    if not isinstance(speed, int | float) or isinstance(speed, bool):
        raise InvalidParameter("voice_settings.speed: must be a number", field="voice_settings")
    return float(speed)


def eleven_error(error: ApiError) -> Any:
    """Both shapes: ElevenLabs' ``detail`` (what its clients show) and our ``error``."""
    response = jsonify({"detail": {"status": error.code, "message": error.message}, "error": error.to_dict()})
    response.status_code = error.status
    if "retry_after" in error.details:
        response.headers["Retry-After"] = str(error.details["retry_after"])
    return response


@attrs.frozen
class _AudioWriter:
    """The encoded audio as it comes (mu-law made here); an error can only end the body early."""

    ulaw: bool
    chunk_size: None = None
    message_overhead: int = 0

    def audio(self, piece: bytes, index: int) -> bytes:
        return to_mulaw(piece) if self.ulaw else piece

    def timings(self, timings: SentenceTimings) -> None:
        return None

    def error(self, error: StreamError) -> None:
        return None

    def finished(self, metrics: StreamMetrics) -> Sequence[bytes]:
        return ()


async def _speak(voice_id: str) -> Any:
    settings = current_settings()
    service = current_service()
    try:
        body = await read_json_body(settings.max_body_bytes)
        if not isinstance(body, dict):
            raise InvalidParameter("the request must be a JSON object")
        unknown = sorted(set(body) - _BODY_FIELDS)
        if unknown:
            raise InvalidParameter(f"unknown field(s): {', '.join(unknown)}")
        if "text" not in body:
            raise InvalidParameter("text: required field missing", field="text")
        fmt = parse_output_format(request.args.get("output_format", DEFAULT_OUTPUT_FORMAT), service)
        params = parse_json_params(
            GenerateParams,
            {
                "text": body["text"],
                "voice_id": voice_for(voice_id, service),
                "speed": speed_of(body.get("voice_settings")),
            },
            max_text_chars=settings.max_text_chars,
        )
        job = service.job(params)
        place = await service.admission.acquire()
    except ApiError as error:
        return eleven_error(error)
    nursery: trio.Nursery = current_app.nursery  # type: ignore[attr-defined]
    audio = relayed_body(nursery, service, job, fmt.choice, place, _AudioWriter(fmt.ulaw), protocol="elevenlabs")
    place.bind(audio)  # a body that never runs still gives its place back
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **fmt.choice.headers(job.pool.audio_format)}
    response = Response(audio, mimetype=fmt.content_type, headers=headers)
    response.timeout = None
    return response


@blueprint.post("/v1/text-to-speech/<voice_id>")
async def convert(voice_id: str) -> Any:
    """The whole text's audio; streamed as it is made (ElevenLabs' clients read it either way)."""
    return await _speak(voice_id)


@blueprint.post("/v1/text-to-speech/<voice_id>/stream")
async def stream(voice_id: str) -> Any:
    return await _speak(voice_id)


def openapi_paths(max_chars: int) -> dict[str, Any]:
    """The ElevenLabs routes for the API description; see docs/elevenlabs.md."""
    error = {
        "type": "object",
        "required": ["detail", "error"],
        "properties": {
            "detail": {"type": "object", "properties": {"status": {"type": "string"}, "message": {"type": "string"}}},
            "error": {"type": "object"},
        },
    }
    errors = {
        str(status): {
            "description": "ElevenLabs' detail and our error",
            "content": {"application/json": {"schema": error}},
        }
        for status in (400, 404, 413, 415, 422, 503)
    }
    body = {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": max_chars},
            "voice_settings": {
                "type": ["object", "null"],
                "properties": {"speed": {"type": ["number", "null"], "minimum": 0.25, "maximum": 4.0}},
            },
            **{
                name: {"description": "accepted, not used"}
                for name in sorted(_BODY_FIELDS - {"text", "voice_settings"})
            },
        },
    }
    parameters = [
        {"name": "voice_id", "in": "path", "required": True, "schema": {"type": "string"}},
        {
            "name": "output_format",
            "in": "query",
            "schema": {
                "type": "string",
                "default": DEFAULT_OUTPUT_FORMAT,
                "pattern": "^(mp3|pcm|ulaw|opus)_[0-9]+(_[0-9]+)?$",
            },
            "description": "codec_rate[_bitrate]: mp3, pcm (raw s16le), ulaw (8000 only) or opus",
        },
    ]
    audio: dict[str, Any] = {
        content_type: {} for content_type in ("audio/mpeg", "audio/pcm", "audio/basic", "audio/ogg")
    }
    operation = {
        "parameters": parameters,
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": "Audio, streamed as it is synthesized", "content": audio}, **errors},
    }
    return {
        "/v1/text-to-speech/{voice_id}": {"post": {"summary": "ElevenLabs-compatible speech", **operation}},
        "/v1/text-to-speech/{voice_id}/stream": {
            "post": {"summary": "ElevenLabs-compatible streamed speech", **operation}
        },
    }
