"""The pronunciation lexicon: list, set and delete entries, import and export TSV, preview a text.

The lexicon is :attr:`AppState.lexicon`, a :class:`~tts_trio.voices.lexicon.Lexicon`
on the voice store's directory (shared by replicas; see that module for the
rules and the file). Every file access runs in a thread. The writes (``PUT``,
``DELETE``) need an admin key when keys are configured
(:data:`tts_trio.api.security.ADMIN_ROUTES`); listing and preview need a user
key. None of the routes needs the engine, so they work while it loads.
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response, jsonify, request
from quart.blueprints import BlueprintSetupState
from werkzeug.routing import PathConverter

from tts_trio.api.json_body import read_body, read_json_body
from tts_trio.api.state import current_settings, current_state
from tts_trio.errors import BadRequest, EmptyText, InvalidParameter, LexiconEntryInvalid, TextTooLong
from tts_trio.voices.lexicon import TSV_MEDIA_TYPE, Entry, parse_tsv

blueprint = Blueprint("lexicon", __name__)


class LexiconWordConverter(PathConverter):
    """A word in a path: anything (slashes too: ``24/7``, sent as ``24%2F7``), never ``preview``.

    Without the exception ``/v1/lexicon/preview`` also matched ``PUT`` and
    ``DELETE /v1/lexicon/<word>``, and ``OPTIONS`` and 405 answers advertised
    them there; an entry for the word "preview" is made by an import.
    """

    regex = r"(?!preview$)[^/][\s\S]*?"


@blueprint.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    """Runs before the routes below are added: a blueprint's deferred setup runs in order."""
    state.app.url_map.converters["lexicon_word"] = LexiconWordConverter


#: What PUT /v1/lexicon/{word} takes besides the word.
ENTRY_FIELDS = frozenset({"spoken", "phonemes", "case_sensitive"})


def _object(data: Any, fields: frozenset[str], example: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object such as {example}")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise InvalidParameter(f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(fields))}", field=unknown[0])
    return data


@blueprint.get("/v1/lexicon")
async def list_lexicon() -> Any:
    unknown = sorted(set(request.args) - {"format"})
    if unknown:
        raise InvalidParameter(f"unknown query parameter {unknown[0]!r}", field=unknown[0])
    kind = request.args.get("format", "json")
    if kind not in ("json", "tsv"):
        raise InvalidParameter("format: json or tsv", field="format")
    lexicon = current_state().lexicon
    if kind == "tsv":
        tsv = await trio.to_thread.run_sync(lexicon.to_tsv)
        return Response(tsv, content_type=f"{TSV_MEDIA_TYPE}; charset=utf-8")
    entries = await trio.to_thread.run_sync(lexicon.entries)
    return jsonify({"entries": [entry.to_dict() for entry in entries]})


@blueprint.put("/v1/lexicon")
async def import_lexicon() -> Any:
    """Replace the whole lexicon with a TSV body: all of it, or (a bad line) nothing."""
    lexicon = current_state().lexicon
    body = await read_body(current_settings().max_upload_bytes)
    if not body:
        raise BadRequest("the body is empty: send TSV lines (a lone # comment line empties the lexicon)")
    entries = parse_tsv(body, max_entries=lexicon.max_entries)
    count = await trio.to_thread.run_sync(lexicon.replace, entries)
    return jsonify({"entries": count})


@blueprint.route("/v1/lexicon/<lexicon_word:word>", methods=["PUT"], merge_slashes=False)
async def set_entry(word: str) -> Any:
    data = _object(await read_json_body(current_settings().max_body_bytes), ENTRY_FIELDS, '{"spoken": "noo york"}')
    for field in ("spoken", "phonemes"):
        if field in data and not isinstance(data[field], str):
            raise LexiconEntryInvalid(f"{field}: a string is required", field=field)
    entry = Entry.create(
        word,
        spoken=data.get("spoken"),
        phonemes=data.get("phonemes"),
        case_sensitive=data.get("case_sensitive", False),
    )
    stored = await trio.to_thread.run_sync(current_state().lexicon.set, entry)
    return jsonify(stored.to_dict())


@blueprint.route("/v1/lexicon/<lexicon_word:word>", methods=["DELETE"], merge_slashes=False)
async def delete_entry(word: str) -> Any:
    deleted = await trio.to_thread.run_sync(current_state().lexicon.delete, word)
    return jsonify({"deleted": deleted.to_dict()})


def _preview_text(value: Any, max_chars: int) -> str:
    """The same rules as a synthesis request's text (the description publishes them)."""
    if not isinstance(value, str):
        raise InvalidParameter("text: a string is required", field="text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameter("text: contains characters that are not valid Unicode text", field="text") from None
    if len(value) > max_chars:
        raise TextTooLong(f"text is {len(value)} characters; the limit is {max_chars}", field="text", limit=max_chars)
    if not any(not char.isspace() and ord(char) >= 32 and ord(char) != 127 for char in value):
        raise EmptyText("text must contain something to say", field="text")
    return value


@blueprint.post("/v1/lexicon/preview")
async def preview() -> Any:
    """What would be spoken for ``text`` with the lexicon as it is now (no engine needed)."""
    settings = current_settings()
    data = _object(await read_json_body(settings.max_body_bytes), frozenset({"text"}), '{"text": "Hello"}')
    if "text" not in data:
        raise InvalidParameter("text: required", field="text")
    text = _preview_text(data["text"], settings.max_text_chars)
    applied = await trio.to_thread.run_sync(current_state().lexicon.apply, text)
    return jsonify(
        {
            "text": applied.text,
            "replacements": [
                {"word": r.word, "kind": r.kind, "source": list(r.source), "target": list(r.target)}
                for r in applied.replacements
            ],
            "warnings": list(applied.warnings),
        }
    )
