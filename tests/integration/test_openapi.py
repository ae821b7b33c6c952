"""The API description covers every registered route and method, and its rules are the server's.

The live schemathesis run (tests/system/test_contract.py) fuzzes the whole
description; the tests here pin each rule it once got wrong, comparing what
the schema allows (validated with a JSON Schema 2020-12 validator, the
dialect of OpenAPI 3.1) with what the server's own parsing accepts.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import pytest
from quart_trio import QuartTrio

from tts_trio.api.app import create_app
from tts_trio.api.openapi import build_spec
from tts_trio.api.routes.voices import MAX_NAME_CHARS, _voice_name
from tts_trio.audio.encoding import choose_encoding
from tts_trio.audio.formats import AudioFormat
from tts_trio.errors import ApiError
from tts_trio.settings import Settings
from tts_trio.synthesis.params import GenerateBodyParams, SseParams, parse_json_params, parse_query_params

LIMIT = 40
SPEC = build_spec(Settings.load({"max_text_chars": LIMIT}, environ={}))
SCHEMAS = SPEC["components"]["schemas"]
ENGINE_AUDIO = AudioFormat(sample_rate=22050)


def test_every_route_is_described(tmp_path: object) -> None:
    app: QuartTrio = create_app(Settings.load(environ={}))
    paths = build_spec()["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        methods = {"get"} if rule.websocket else {m.lower() for m in rule.methods or ()} - {"head", "options"}
        for method in methods:
            if method not in paths.get(path, {}):
                missing.append(f"{method.upper()} {path}")
    assert missing == []


async def test_openapi_json_is_served(test_app: QuartTrio) -> None:
    response = await test_app.test_client().get("/openapi.json")
    spec = await response.get_json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/audio/speech" in spec["paths"]


async def test_the_served_text_limit_is_the_servers(test_app: QuartTrio) -> None:
    spec = await (await test_app.test_client().get("/openapi.json")).get_json()
    text = spec["components"]["schemas"]["GenerateRequest"]["properties"]["text"]
    assert text["maxLength"] == Settings.load(environ={}).max_text_chars


def schema_allows(schema: dict[str, Any], instance: Any) -> bool:
    return bool(jsonschema_rs.Draft202012Validator(schema).is_valid(instance))


def server_accepts_generate(body: dict[str, Any]) -> bool:
    """What POST /v1/tts/generate checks before it synthesizes (the parameters, then the encoding)."""
    try:
        params = parse_json_params(GenerateBodyParams, body, max_text_chars=LIMIT)
        choose_encoding(params.output_format, params.sample_rate, ENGINE_AUDIO)
    except ApiError:
        return False
    return True


@pytest.mark.parametrize(
    "body",
    [
        {"text": "Hi"},
        # Integral floats are integers to JSON Schema, so the server takes them.
        {"text": "Hi", "sample_rate": 9043.0},
        {"text": "Hi", "sample_rate": 9043.5},
        # null is "the engine's rate", and the schema says so.
        {"text": "Hi", "sample_rate": None},
        {"text": "Hi", "output_format": "opus", "sample_rate": None},
        # Per-format rates: Opus takes 8/12/16/24/48 kHz only; MP3 and AAC their own set.
        {"text": "Hi", "output_format": "opus", "sample_rate": 16000},
        {"text": "Hi", "output_format": "opus", "sample_rate": 22050},
        {"text": "Hi", "output_format": "opus", "sample_rate": 12875},
        {"text": "Hi", "output_format": "mp3", "sample_rate": 22050},
        {"text": "Hi", "output_format": "aac", "sample_rate": 9000},
        {"text": "Hi", "output_format": "wav", "sample_rate": 9043},
        {"text": "Hi", "output_format": "flac", "sample_rate": 7999},
        {"text": "Hi", "sample_rate": 9043},
        # Empty after trimming (control characters are spaces): nothing to say.
        {"text": ""},
        {"text": " \n\t "},
        {"text": "\x00\x07"},
        {"text": " a "},
        {"text": "a" * LIMIT},
        {"text": "a" * (LIMIT + 1)},
        {"text": "Hi", "voice_id": " "},
        {"text": "Hi", "voice_id": "x" * 129},
        {"text": "Hi", "temperature": 2.5},
        {"text": "Hi", "colour": "red"},
    ],
)
def test_generate_schema_and_server_agree(body: dict[str, Any]) -> None:
    assert schema_allows(SCHEMAS["GenerateRequest"], body) == server_accepts_generate(body)


def server_accepts_sse(query: dict[str, str]) -> bool:
    try:
        params = parse_query_params(SseParams, query, max_text_chars=LIMIT)
        choose_encoding(params.output_format, params.sample_rate, ENGINE_AUDIO)
    except ApiError:
        return False
    return True


@pytest.mark.parametrize(
    ("query", "typed"),
    [
        ({"text": "Hi", "output_format": "opus", "sample_rate": "24000"}, {"sample_rate": 24000}),
        ({"text": "Hi", "output_format": "opus", "sample_rate": "12875"}, {"sample_rate": 12875}),
        ({"text": "Hi", "output_format": "pcm", "sample_rate": "12875"}, {"sample_rate": 12875}),
        ({"text": "Hi", "chunk_size": "100"}, {"chunk_size": 100}),
        ({"text": " "}, {}),
    ],
)
def test_sse_query_schema_and_server_agree(query: dict[str, str], typed: dict[str, Any]) -> None:
    # One exploded object parameter: the rate rule spans output_format and sample_rate.
    (parameter,) = SPEC["paths"]["/v1/tts/stream-sse"]["get"]["parameters"]
    assert (parameter["in"], parameter["style"], parameter["explode"]) == ("query", "form", True)
    assert schema_allows(parameter["schema"], {**query, **typed}) == server_accepts_sse(query)


@pytest.mark.parametrize(
    "name",
    [
        "Narrator",
        "  Narrator  ",
        "a",
        "x" * MAX_NAME_CHARS,
        "x" * (MAX_NAME_CHARS + 1),
        "",
        "   ",
        "bad\x07name",
        " " + "y" * MAX_NAME_CHARS + "\n",  # trimmed to 64
        "tab\tinside",
        "Zoë 2",
    ],
)
def test_voice_name_schema_and_server_agree(name: str) -> None:
    schema = SPEC["paths"]["/v1/voices/create"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    try:
        _voice_name({"name": name})
        accepted = True
    except ApiError:
        accepted = False
    assert schema_allows(schema["properties"]["name"], name) == accepted


@pytest.mark.parametrize(
    ("language", "valid"), [("en", True), ("en-US", True), ("", True), (" de ", True), ("english", False)]
)
def test_voice_language_schema(language: str, valid: bool) -> None:
    schema = SPEC["paths"]["/v1/voices/create"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema_allows(schema["properties"]["language"], language) == valid


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "tts-1", "input": "Hi", "voice": "alloy", "response_format": "wav"}, 200),
        ({"model": "tts-1", "input": "Hi", "voice": "alloy", "response_format": "wav", "instructions": None}, 200),
        ({"model": "tts-1", "input": "  ", "voice": "alloy"}, 422),
        ({"model": "tts-1", "input": "", "voice": "alloy"}, 422),
        ({"model": "tts-1", "input": "Hi", "voice": ""}, 422),
    ],
)
async def test_speech_schema_and_server_agree(test_app: QuartTrio, body: dict[str, Any], status: int) -> None:
    assert schema_allows(SCHEMAS["SpeechRequest"], body) == (status == 200)
    response = await test_app.test_client().post("/v1/audio/speech", json=body)
    assert response.status_code == status


async def test_websocket_route_documents_its_plain_http_answer(test_app: QuartTrio) -> None:
    response = await test_app.test_client().get("/v1/tts/stream")
    assert response.status_code == 400
    assert "400" in SPEC["paths"]["/v1/tts/stream"]["get"]["responses"]


def test_integer_fields_allow_integral_floats_in_the_schema() -> None:
    rate = SCHEMAS["GenerateRequest"]["properties"]["sample_rate"]
    assert schema_allows(rate, 9043.0)  # what the server now accepts (see tests/unit/synthesis/test_params.py)
