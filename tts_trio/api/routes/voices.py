"""Voice management: list, create (upload reference audio), delete, set the current voice.

Uploads are read with a byte limit that holds with or without
Content-Length (Quart checks only the header), parsed as multipart form
data, decoded by a real audio decoder and stored atomically; see
:mod:`tts_trio.voices.store` and :mod:`tts_trio.voices.reference_audio`.

Every write (create, delete, set) on a full store answers 507
``insufficient_storage`` and on a read-only one 503 ``store_read_only``
with Retry-After, leaving the store as it was; listing keeps working. The
store raises those itself, so these handlers need nothing of their own.
"""

from __future__ import annotations

import io
import re
from typing import Any

import trio
from quart import Blueprint, jsonify, request
from quart.blueprints import BlueprintSetupState
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header
from werkzeug.routing import BaseConverter

from tts_trio.api.json_body import read_body
from tts_trio.api.state import current_service, current_settings
from tts_trio.errors import BadRequest, BuiltinVoice, InvalidParameter
from tts_trio.voices.reference_audio import normalize_reference

blueprint = Blueprint("voices", __name__)


class VoiceIdConverter(BaseConverter):
    """A voice id in a path: one segment, never ``create``.

    Without it ``/v1/voices/create`` also matched ``DELETE /v1/voices/<voice_id>``,
    so ``OPTIONS`` and 405 answers advertised a ``DELETE`` there that only
    ever answered 404. No voice can be called that: built-in ids are the
    engine's, custom ids are ``v_`` and hex.
    """

    regex = r"(?!create$)[^/]+"


@blueprint.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    """Runs before the routes below are added: a blueprint's deferred setup runs in order."""
    state.app.url_map.converters["voice_id"] = VoiceIdConverter


_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_NAME_CHARS = 64


def _parse_form(data: bytes) -> tuple[dict[str, str], dict[str, FileStorage]]:
    """Parse an upload that is already in memory and within the limit."""
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data" or "boundary" not in options:
        raise BadRequest("send multipart/form-data with fields name, language and audio_file")
    # The body was counted while reading, so the parser needs no memory cap of its own.
    parser = FormDataParser(silent=False, max_form_parts=16, max_form_memory_size=len(data) + 1)
    try:
        _, form, files = parser.parse(io.BytesIO(data), mimetype, len(data), options)
    except (HTTPException, ValueError) as error:
        raise BadRequest(f"the multipart body could not be parsed ({type(error).__name__})") from None
    return {key: form[key] for key in form}, {key: files[key] for key in files}


def _voice_name(form: dict[str, str]) -> str:
    name = form.get("name", "").strip()
    if not name or len(name) > MAX_NAME_CHARS or any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise InvalidParameter(f"name: 1 to {MAX_NAME_CHARS} printable characters are required", field="name")
    return name


@blueprint.get("/v1/voices")
async def list_voices() -> Any:
    """The current engine's voices and the custom ones; ``?engine=`` lists a resident engine's instead."""
    service = current_service()
    engine = service.engines.named(request.args.get("engine") or None)
    custom = await trio.to_thread.run_sync(service.store.list)
    current = service.current_voice_id()
    builtin: list[dict[str, Any]] = []
    for known in engine.voices.values():
        entry: dict[str, Any] = {
            "id": known.id,
            "name": known.name,
            "kind": "builtin",
            "language": known.language,
            "gender": known.gender,
        }
        # Neural voices (piper) also say how they sound: their own rate and the model's quality.
        if known.sample_rate is not None:
            entry["sample_rate"] = known.sample_rate
        if known.quality is not None:
            entry["quality"] = known.quality
        builtin.append(entry)
    voices = builtin + [voice.to_dict() for voice in custom]
    for voice in voices:
        voice["current"] = voice["id"] == current
    return jsonify(
        {
            "engine": engine.name,
            "current": current,
            "default": engine.default_voice or "default",
            "cloning": service.can_clone(engine),
            "voices": voices,
        }
    )


@blueprint.post("/v1/voices/create")
async def create_voice() -> Any:
    service = current_service()
    settings = current_settings()
    form, files = _parse_form(await read_body(settings.max_upload_bytes))
    name = _voice_name(form)
    language = form.get("language", "en").strip() or "en"
    if not _LANGUAGE.match(language):
        raise InvalidParameter("language: a language tag such as en, de or en-US is required", field="language")
    upload = files.get("audio_file")
    if upload is None:
        raise InvalidParameter("audio_file: a file field with the reference recording is required", field="audio_file")
    reference = await trio.to_thread.run_sync(
        lambda: normalize_reference(
            upload.stream.read(), min_seconds=settings.voice_min_seconds, max_seconds=settings.voice_max_seconds
        )
    )
    async with service.store_lock:  # one write at a time here; names stay unique across replicas by claims
        voice = await trio.to_thread.run_sync(
            lambda: service.store.create(
                name=name,
                language=language,
                engine=service.pool.name,
                wav=reference.wav,
                duration=reference.duration,
                source_format=reference.source_format,
            )
        )
    response = jsonify(voice.to_dict())
    response.status_code = 201
    return response


@blueprint.delete("/v1/voices/<voice_id:voice_id>")
async def delete_voice(voice_id: str) -> Any:
    service = current_service()
    if voice_id.lower() in service.voices:
        raise BuiltinVoice(f"{voice_id!r} comes with the {service.pool.name!r} engine and cannot be deleted")
    async with service.store_lock:
        voice = await trio.to_thread.run_sync(service.store.delete, voice_id)
    service.voice_removed(voice.id)  # its cached phrases go too
    return jsonify({"deleted": voice.id, "current": service.current_voice_id()})


@blueprint.post("/v1/voices/<voice_id:voice_id>/set")
async def set_voice(voice_id: str) -> Any:
    service = current_service()
    if voice_id == "default":
        chosen = None
    else:
        service.resolve_voice(voice_id)  # 404 for unknown ids, 422 for custom voices the engine cannot use
        chosen = voice_id
    async with service.store_lock:
        await trio.to_thread.run_sync(service.store.set_current, chosen)
    return jsonify({"current": service.current_voice_id()})
