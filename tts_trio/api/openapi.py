"""The OpenAPI 3.1 description of every route, served at ``/openapi.json``.

Written out by hand next to the code it describes (the routes are plain
Quart handlers with their own parameter classes); a test checks that every
registered route appears here, so the description cannot silently fall
behind.
"""

from __future__ import annotations

from typing import Any

from tts_trio import __version__
from tts_trio.audio.encoding import FORMATS

_ERROR = {"$ref": "#/components/schemas/Error"}


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


_AUDIO_CONTENT = {
    "audio/wav": {},
    "audio/mpeg": {},
    "audio/ogg": {},
    "audio/flac": {},
    "audio/aac": {},
    "application/octet-stream": {"description": "pcm: raw 16-bit little-endian mono"},
}

_SYNTHESIS_FIELDS: dict[str, Any] = {
    "text": {"type": "string", "minLength": 1, "description": "What to say (trimmed; up to TTS_MAX_TEXT_CHARS)"},
    "voice_id": {"type": "string", "default": "default", "description": "Voice id, optionally +variant (en-us+f3)"},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0.7},
    "output_format": {"type": "string", "enum": list(FORMATS), "default": "wav"},
    "sample_rate": {"type": "integer", "minimum": 8000, "maximum": 48000, "description": "Default: the engine's"},
    "speed": {"type": "number", "minimum": 0.25, "maximum": 4.0, "default": 1.0},
}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def build_spec() -> dict[str, Any]:
    """The whole document (built per request: it is small and cheap)."""
    sse_params = [_query(name, schema, name == "text") for name, schema in _SYNTHESIS_FIELDS.items()]
    sse_params.append(_query("chunk_size", {"type": "integer", "minimum": 256, "maximum": 1048576, "default": 4096}))
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
                    "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}},
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
                            "description": "Audio in output_format; JSON when timestamps is true",
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
                        "metrics, done; error if the engine fails mid-stream."
                    ),
                    "parameters": sse_params,
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
                    "responses": {"101": {"description": "Switching to the WebSocket protocol"}},
                }
            },
            "/v1/audio/speech": {
                "post": {
                    "summary": "OpenAI-compatible speech (streamed as it is synthesized)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SpeechRequest"}}},
                    },
                    "responses": {
                        "200": {"description": "Audio, or SSE when stream_format is sse", "content": _AUDIO_CONTENT},
                        **_errors(400, 404, 413, 422, 503),
                    },
                }
            },
            "/v1/audio/voices": {
                "get": {
                    "summary": "Engine voices, variants and OpenAI voice names",
                    "responses": {"200": {"description": "Voices"}},
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
                                    "properties": {"engine_type": {"type": "string"}, "config": {"type": "object"}},
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
                    "responses": {"200": {"description": "Voices"}},
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
                                        "name": {"type": "string", "maxLength": 64},
                                        "language": {"type": "string", "default": "en"},
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
                    },
                }
            },
            "/v1/voices/{voice_id}": {
                "delete": {
                    "summary": "Delete a custom voice (the current voice falls back to the default)",
                    "parameters": [_path("voice_id")],
                    "responses": {
                        "200": {"description": "Deleted"},
                        "409": _json(_ERROR, "A built-in voice"),
                        **_errors(404),
                    },
                }
            },
            "/v1/voices/{voice_id}/set": {
                "post": {
                    "summary": "Make a voice the current one (used when a request names none)",
                    "parameters": [_path("voice_id")],
                    "responses": {"200": {"description": "The current voice"}, **_errors(404, 422)},
                }
            },
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
                "GenerateRequest": {
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": False,
                    "properties": {**_SYNTHESIS_FIELDS, "timestamps": {"type": "boolean", "default": False}},
                },
                "SpeechRequest": {
                    "type": "object",
                    "required": ["model", "input", "voice"],
                    "additionalProperties": False,
                    "properties": {
                        "model": {"type": "string", "examples": ["tts-1", "gpt-4o-mini-tts"]},
                        "input": {"type": "string"},
                        "voice": {"type": "string", "examples": ["alloy", "en-gb"]},
                        "response_format": {"type": "string", "enum": list(FORMATS), "default": "mp3"},
                        "speed": {"type": "number", "minimum": 0.25, "maximum": 4.0, "default": 1.0},
                        "instructions": {"type": "string"},
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
                    },
                },
            }
        },
    }
