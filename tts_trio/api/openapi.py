"""The OpenAPI 3.1 description of every route, served at ``/openapi.json``.

Written out by hand next to the code it describes (the routes are plain
Quart handlers with their own parameter classes); a test checks that every
registered route appears here, so the description cannot silently fall
behind, and a schemathesis run against a live server checks that it says
what the server enforces: a request the schema allows is served, one it
forbids is refused. Rules that depend on the deployment (the text limit)
are taken from the running server's settings.
"""

from __future__ import annotations

from typing import Any

import attrs
from quart import has_app_context

from tts_trio import __version__
from tts_trio.api.dialects.cartesia_protocol import openapi_paths as cartesia_paths
from tts_trio.api.dialects.deepgram_protocol import openapi_paths as deepgram_paths
from tts_trio.api.dialects.elevenlabs import openapi_paths as elevenlabs_paths
from tts_trio.api.routes.voices import MAX_NAME_CHARS
from tts_trio.audio.encoding import _LOSSY_RATES, FORMATS, MAX_RATE, MIN_RATE
from tts_trio.settings import Settings
from tts_trio.synthesis.params import (
    CAPTION_FORMATS,
    MAX_CHUNK_SIZE,
    MAX_ID_CHARS,
    MAX_SPEED,
    MIN_CHUNK_SIZE,
    MIN_SPEED,
)
from tts_trio.voices import lexicon

_ERROR = {"$ref": "#/components/schemas/Error"}
#: Something to say: a character that is neither whitespace nor a control character
#: (those are spoken as spaces and the text is trimmed, so a text without one is refused).
_SAYABLE = r"[^\s\x00-\x1f\x7f]"
#: A voice name: 1 to MAX_NAME_CHARS characters once trimmed, no control characters.
_NAME = rf"^\s*[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{{0,{MAX_NAME_CHARS - 2}}}[^\s\x00-\x1f\x7f])?\s*$"
#: A language tag (en, de, en-US), trimmed; empty means en.
_LANGUAGE = r"^\s*(?:[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)?\s*$"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Malformed request (not JSON, wrong shape)",
        404: "Unknown voice, model or route",
        413: "Text or body over the configured limit",
        422: "A parameter is missing, of the wrong type or out of range",
        503: "The engine is not ready or failed",
    }
    return {str(status): _json(_ERROR, text[status]) for status in statuses}


def _store_errors() -> dict[str, Any]:
    """A write to the voice store refused: its disk is full (507) or it is read-only (503, Retry-After)."""
    read_only = _json(
        _ERROR,
        "store_read_only: the voice store is read-only (voices can still be listed and used); retry later. "
        "store_busy (lexicon changes): another replica held the lexicon's lock too long; retry",
    )
    read_only["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    return {
        "503": read_only,
        "507": _json(_ERROR, "insufficient_storage: the voice store's disk or quota is full; nothing was written"),
    }


_STORE_CONDITION = {
    "type": "string",
    "enum": ["ok", "full", "read_only", "unavailable"],
    "description": (
        "Whether the voice store can take a write now: full (less free space than the longest voice needs), "
        "read_only (a read-only mount or no permission), unavailable (cannot be examined)"
    ),
}


_AUDIO_CONTENT = {
    "audio/wav": {},
    "audio/mpeg": {},
    "audio/ogg": {},
    "audio/flac": {},
    "audio/aac": {},
    "audio/pcm": {
        "description": "pcm: raw 16-bit little-endian mono; the type carries the rate: audio/pcm;rate=24000;channels=1"
    },
}


def _text(max_chars: int, description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_chars,
        "pattern": _SAYABLE,
        "description": f"{description} (control characters are spoken as spaces; trimmed; at most {max_chars})",
    }


def _synthesis_fields(max_chars: int, *, nullable_rate: bool) -> dict[str, Any]:
    """The fields every synthesis request shares; ``null`` for the rate only where JSON can say it."""
    rate_type: str | list[str] = ["integer", "null"] if nullable_rate else "integer"
    return {
        "text": _text(max_chars, "What to say"),
        "voice_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_CHARS,
            "pattern": r"\S",
            "default": "default",
            "description": "Voice id, optionally +variant (en-us+f3)",
        },
        "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0.7},
        "output_format": {"type": "string", "enum": list(FORMATS), "default": "wav"},
        "sample_rate": {
            "type": rate_type,
            "minimum": MIN_RATE,
            "maximum": MAX_RATE,
            "description": (
                "Default (or null): the engine's, 48000 where the format cannot carry it. "
                + "; ".join(f"{name}: {', '.join(map(str, rates))}" for name, rates in _LOSSY_RATES.items())
            ),
        },
        "speed": {"type": "number", "minimum": MIN_SPEED, "maximum": MAX_SPEED, "default": 1.0},
        "engine": {
            "type": ["string", "null"],
            "description": "A loaded engine by name (GET /v1/engines: resident); default (or null): the current one",
        },
    }


def _rate_rule(*, nullable_rate: bool) -> list[dict[str, Any]]:
    """The lossy encoders take only some rates (see :mod:`tts_trio.audio.encoding`), one branch per rate set."""
    extra = [None] if nullable_rate else []
    lossless = [name for name in FORMATS if name not in _LOSSY_RATES]
    by_rates: dict[tuple[int, ...], list[str]] = {}
    for name, rates in _LOSSY_RATES.items():
        by_rates.setdefault(rates, []).append(name)
    return [
        {"properties": {"output_format": {"enum": lossless}}},  # also when output_format is absent (wav)
        *(
            {
                "required": ["output_format"],
                "properties": {"output_format": {"enum": names}, "sample_rate": {"enum": [*rates, *extra]}},
            }
            for rates, names in by_rates.items()
        ),
    ]


def _synthesis_request(max_chars: int, *, nullable_rate: bool, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {**_synthesis_fields(max_chars, nullable_rate=nullable_rate), **extra},
        "anyOf": _rate_rule(nullable_rate=nullable_rate),
    }


def _max_text_chars(settings: Settings | None) -> int:
    if settings is None and has_app_context():
        from tts_trio.api.state import current_settings

        settings = current_settings()
    if settings is not None:
        return settings.max_text_chars
    default = attrs.fields(Settings).max_text_chars.default  # no app: a document for the defaults
    assert isinstance(default, int)
    return default


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _lexicon_paths(max_chars: int) -> dict[str, Any]:
    """The pronunciation lexicon's routes (tts_trio.api.routes.lexicon; the rules are tts_trio.voices.lexicon's)."""
    entry = {
        "type": "object",
        "required": ["word", "case_sensitive"],
        "properties": {
            "word": {"type": "string"},
            "spoken": {"type": "string"},
            "phonemes": {"type": "string", "description": "IPA"},
            "case_sensitive": {"type": "boolean"},
        },
    }
    word = {
        "name": "word",
        "in": "path",
        "required": True,
        "description": (
            f"The word or words (New York), 1 to {lexicon.MAX_WORD_CHARS} characters, not starting with #; "
            "trimmed, inner whitespace taken as one space"
        ),
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": lexicon.MAX_WORD_CHARS,
            "pattern": lexicon.WORD_PATTERN,
            "not": {"const": "preview"},
        },
    }
    spoken = {
        "type": "string",
        "minLength": 1,
        "maxLength": lexicon.MAX_SPOKEN_CHARS,
        "pattern": lexicon.SPOKEN_PATTERN,
        "description": "What to say instead (trimmed; not starting with /)",
    }
    phonemes = {
        "type": "string",
        "minLength": 1,
        "maxLength": lexicon.MAX_SPOKEN_CHARS,
        "pattern": lexicon.PHONEMES_PATTERN,
        "description": "IPA, without slashes (trimmed); an engine that takes no phonemes reads the word as written",
    }
    tsv_body = {
        "type": "string",
        "minLength": 1,
        "pattern": lexicon.TSV_PATTERN,
        "description": (
            "UTF-8, one entry a line: word<TAB>spoken or word<TAB>/ipa/, optionally <TAB>case_sensitive; "
            f"# comments and blank lines are skipped; a later line for the same word wins; at most "
            f"{lexicon.MAX_ENTRIES} entries"
        ),
    }
    text = _text(max_chars, "A text to run through the lexicon")
    return {
        "/v1/lexicon": {
            "get": {
                "summary": "The pronunciation lexicon: every entry (JSON), or TSV with format=tsv",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json", "tsv"], "default": "json"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The entries, sorted by word",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["entries"],
                                    "properties": {"entries": {"type": "array", "items": entry}},
                                }
                            },
                            lexicon.TSV_MEDIA_TYPE: {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(422),
                },
            },
            "put": {
                "summary": "Replace the whole lexicon with TSV (all of it, or nothing: a bad line is a 422 naming it)",
                "requestBody": {"required": True, "content": {lexicon.TSV_MEDIA_TYPE: {"schema": tsv_body}}},
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["entries"], "properties": {"entries": {"type": "integer"}}},
                        "The number of entries now in the lexicon",
                    ),
                    "422": _json(_ERROR, "lexicon_import_invalid: a bad line (its number is in line); nothing changed"),
                    **_errors(400, 413),
                    **_store_errors(),
                },
            },
        },
        "/v1/lexicon/{word}": {
            "put": {
                "summary": "Add or replace one entry: a spoken form or phonemes (IPA)",
                "parameters": [word],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "spoken": spoken,
                                    "phonemes": phonemes,
                                    "case_sensitive": {
                                        "type": "boolean",
                                        "default": False,
                                        "description": "Match only this spelling (acronyms: US, not us)",
                                    },
                                },
                                "oneOf": [
                                    {"required": ["spoken"], "not": {"required": ["phonemes"]}},
                                    {"required": ["phonemes"], "not": {"required": ["spoken"]}},
                                ],
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(entry, "The stored entry"),
                    "405": _json(_ERROR, "preview: that path is the preview route (POST); import an entry for it"),
                    "409": _json(_ERROR, f"lexicon_full: the lexicon holds {lexicon.MAX_ENTRIES} entries"),
                    **_errors(400, 404, 413, 422),
                    **_store_errors(),
                },
            },
            "delete": {
                "summary": "Delete an entry (the case-sensitive one spelled so, else the case-insensitive one)",
                "parameters": [word],
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["deleted"], "properties": {"deleted": entry}}, "Deleted"
                    ),
                    "405": _json(_ERROR, "preview: that path is the preview route (POST)"),
                    **_errors(404, 422),
                    **_store_errors(),
                },
            },
        },
        "/v1/lexicon/preview": {
            "post": {
                "summary": "What would be spoken for a text with the lexicon as it is now",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["text"],
                                "additionalProperties": False,
                                "properties": {"text": text},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["text", "replacements", "warnings"],
                            "properties": {
                                "text": {"type": "string"},
                                "replacements": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "word": {"type": "string"},
                                            "kind": {"type": "string", "enum": ["spoken", "phonemes"]},
                                            "source": {"type": "array", "items": {"type": "integer"}},
                                            "target": {"type": "array", "items": {"type": "integer"}},
                                        },
                                    },
                                },
                                "warnings": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "The text after the lexicon; source and target are [start, end) in the text before and after",
                    ),
                    **_errors(400, 413, 422),
                },
            }
        },
    }


def build_spec(settings: Settings | None = None) -> dict[str, Any]:
    """The whole document (built per request: it is small and cheap, and follows the server's settings)."""
    max_chars = _max_text_chars(settings)
    chunk_size = {"type": "integer", "minimum": MIN_CHUNK_SIZE, "maximum": MAX_CHUNK_SIZE, "default": 4096}
    # One exploded object (?text=...&output_format=...): the rate rule spans two parameters,
    # which separate parameters cannot say.
    sse_query = {
        "name": "query",
        "in": "query",
        "required": True,
        "style": "form",
        "explode": True,
        "description": "The synthesis options as query parameters (text is required)",
        "schema": _synthesis_request(
            max_chars,
            nullable_rate=False,
            extra={
                "chunk_size": chunk_size,
                "captions": {
                    "type": "string",
                    "enum": list(CAPTION_FORMATS),
                    "description": "Send a captions event (SRT or WebVTT cues) after each sentence's timings",
                },
            },
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tts-trio",
            "version": __version__,
            "description": "Streaming text-to-speech: REST, SSE, WebSocket and an OpenAI-compatible API.",
        },
        "paths": {
            "/": {"get": {"summary": "Browser playground", "responses": {"200": {"description": "HTML page"}}}},
            "/docs": {
                "get": {"summary": "This API description as a page", "responses": {"200": {"description": "HTML"}}}
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (requests, time to first audio, slots, queue, cancellations)",
                    "responses": {"200": {"description": "text/plain; version=0.0.4"}},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: 200 when the engine takes requests, 503 otherwise (open without a key)",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "ready": {"type": "boolean"},
                                    "engine": {"type": ["string", "null"]},
                                    "store": {
                                        **_STORE_CONDITION,
                                        "description": "Only when the voice store cannot take a write now "
                                        "(not ok); the replica stays ready, as it still synthesizes",
                                    },
                                },
                            },
                            "Ready",
                        ),
                        "503": {"description": "Not ready"},
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness: engine, device, voices, slots in use, active streams",
                    "responses": {"200": _json({"$ref": "#/components/schemas/Health"}, "Server status")},
                }
            },
            "/v1/tts/generate": {
                "post": {
                    "summary": "The whole text as one audio file (or JSON with timings)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GenerateRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": (
                                "Audio in output_format; JSON (audio base64, format, duration, sentences, words) "
                                "when timestamps is true or captions is given, with captions: the SRT or WebVTT "
                                "document"
                            ),
                            "content": {**_AUDIO_CONTENT, "application/json": {}},
                        },
                        **_errors(400, 404, 413, 422, 503),
                    },
                }
            },
            "/v1/tts/stream-sse": {
                "get": {
                    "summary": "Audio as Server-Sent Events while it is synthesized",
                    "description": (
                        "Events: format, audio {chunk: base64, index}, timings (after each sentence), "
                        "with captions=srt|vtt a captions event after each timings {sentence, format, text, cues} "
                        "(the texts joined are the whole document; the first vtt one starts with WEBVTT), "
                        "metrics, done; error if the engine fails mid-stream."
                    ),
                    "parameters": [sse_query],
                    "responses": {
                        "200": {"description": "text/event-stream", "content": {"text/event-stream": {}}},
                        **_errors(404, 413, 422, 503),
                    },
                }
            },
            "/v1/tts/stream": {
                "get": {
                    "summary": "WebSocket: generate / stop / ping, and text-in streaming (append / flush / end)",
                    "description": "Upgrade to a WebSocket. See README and docs/streaming-input.md for messages.",
                    "responses": {
                        "101": {"description": "Switching to the WebSocket protocol"},
                        "400": _json(_ERROR, "A plain HTTP request, not a WebSocket upgrade"),
                    },
                }
            },
            **deepgram_paths(max_chars),
            **cartesia_paths(max_chars),
            **elevenlabs_paths(max_chars),
            "/v1/audio/speech": {
                "post": {
                    "summary": "OpenAI-compatible speech (streamed as it is synthesized)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SpeechRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "Audio, or SSE when stream_format is sse",
                            "content": {**_AUDIO_CONTENT, "text/event-stream": {}},
                        },
                        **_errors(400, 404, 413, 422, 503),
                    },
                }
            },
            "/v1/audio/voices": {
                "get": {
                    "summary": "Engine voices, variants and OpenAI voice names",
                    "description": (
                        "voices lists the engine's voices and OpenAI's names (kind openai, maps_to the voice "
                        "they speak with), as {id, name, ...} entries, the shape Open WebUI reads."
                    ),
                    "responses": {"200": {"description": "Voices"}},
                }
            },
            "/v1/audio/models": {
                "get": {
                    "summary": "Model names as {models: [{id}]} (what Open WebUI asks for)",
                    "responses": {"200": {"description": "Models"}},
                }
            },
            "/v1/engines": {
                "get": {
                    "summary": "Every engine: available here or why not, loaded, current, capabilities, config",
                    "responses": {"200": {"description": "Engines"}},
                }
            },
            "/v1/engines/switch": {
                "post": {
                    "summary": "Load an engine and make it current (running streams finish on the old one)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["engine_type"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "engine_type": {"type": "string", "minLength": 1},
                                        "config": {
                                            "type": ["object", "null"],
                                            "description": (
                                                "The engine's options (GET /v1/engines lists them); "
                                                "unknown keys are refused"
                                            ),
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"200": {"description": "The new current engine"}, **_errors(400, 404, 422, 503)},
                }
            },
            "/v1/voices": {
                "get": {
                    "summary": "Built-in and custom voices, marked by kind, with the current one",
                    "parameters": [
                        {
                            "name": "engine",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "List a resident engine's built-in voices (default: the current engine's)",
                        }
                    ],
                    "responses": {"200": {"description": "Voices"}, **_errors(422)},
                }
            },
            "/v1/voices/create": {
                "post": {
                    "summary": "Create a custom voice from reference audio (3 to 30 s; wav, mp3, flac, ogg, ...)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["name", "audio_file"],
                                    "properties": {
                                        "name": {"type": "string", "pattern": _NAME},
                                        "language": {"type": "string", "pattern": _LANGUAGE, "default": "en"},
                                        "audio_file": {"type": "string", "format": "binary"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "The stored voice"},
                        "409": _json(_ERROR, "A voice with this name exists"),
                        **_errors(400, 413, 422),
                        **_store_errors(),
                    },
                }
            },
            "/v1/voices/{voice_id}": {
                "delete": {
                    "summary": "Delete a custom voice (the current voice falls back to the default)",
                    "parameters": [
                        {
                            "name": "voice_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "not": {"const": "create"}},
                        }
                    ],
                    "responses": {
                        "200": {"description": "Deleted"},
                        "405": _json(_ERROR, "create: that path is the upload route (POST)"),
                        "409": _json(_ERROR, "A built-in voice"),
                        **_errors(404),
                        **_store_errors(),
                    },
                }
            },
            "/v1/voices/{voice_id}/set": {
                "post": {
                    "summary": "Make a voice the current one (used when a request names none)",
                    "parameters": [_path("voice_id")],
                    "responses": {
                        "200": {"description": "The current voice"},
                        **_errors(404, 422),
                        **_store_errors(),
                    },
                }
            },
            **_lexicon_paths(max_chars),
            "/v1/models": {
                "get": {"summary": "Models (OpenAI list format)", "responses": {"200": {"description": "List"}}}
            },
            "/v1/models/{model}": {
                "get": {
                    "summary": "One model",
                    "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "Model"}, **_errors(404)},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                        }
                    },
                },
                "GenerateRequest": _synthesis_request(
                    max_chars,
                    nullable_rate=True,
                    extra={
                        "timestamps": {"type": "boolean", "default": False},
                        "captions": {
                            "enum": [*CAPTION_FORMATS, None],
                            "default": None,
                            "description": (
                                "Add captions (the whole SRT or WebVTT document, one cue per sentence) to the "
                                "timestamps JSON; implies timestamps"
                            ),
                        },
                    },
                ),
                "SpeechRequest": {
                    "type": "object",
                    "required": ["model", "input", "voice"],
                    "additionalProperties": False,
                    "properties": {
                        "model": {
                            "type": "string",
                            "description": "tts-1, tts-1-hd, gpt-4o-mini-tts, their dated names, or the engine's name",
                            "examples": ["tts-1", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"],
                        },
                        "input": _text(max_chars, "What to say"),
                        "voice": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_ID_CHARS,
                            "pattern": r"\S",
                            "examples": ["alloy", "en-gb"],
                        },
                        "response_format": {"type": "string", "enum": list(FORMATS), "default": "mp3"},
                        "speed": {"type": "number", "minimum": 0.25, "maximum": 4.0, "default": 1.0},
                        "instructions": {"type": ["string", "null"], "maxLength": 4096},
                        "stream_format": {"type": "string", "enum": ["audio", "sse"], "default": "audio"},
                    },
                },
                "Health": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string"},
                        "engine": {"type": "string"},
                        "device": {"type": "string"},
                        "voices": {"type": "integer"},
                        "slots": {"type": "object"},
                        "active_streams": {"type": "integer"},
                        "store": _STORE_CONDITION,
                        "store_free_bytes": {"type": ["integer", "null"]},
                    },
                },
            }
        },
    }
