from typing import Any

import pytest

from tts_trio.errors import ApiError
from tts_trio.synthesis.params import GenerateParams, SseParams, WsGenerateParams, parse_json_params, parse_query_params

LIMIT = {"max_text_chars": 100}


def test_parse_json_params_normalizes_text() -> None:
    params = parse_json_params(GenerateParams, {"text": "  Hi\x00 there\x07 "}, max_text_chars=100)
    assert params.text == "Hi  there"
    assert params.voice_id == "default"


@pytest.mark.parametrize(
    ("data", "status", "code", "fragment"),
    [
        ({}, 422, "invalid_parameter", "text: required field missing"),
        ({"text": 5}, 422, "invalid_parameter", "text: expected a string"),
        ({"text": " \n\t "}, 422, "empty_text", "something to say"),
        ({"text": "a" * 101}, 413, "text_too_long", "limit is 100"),
        ({"text": "a", "temperature": True}, 422, "invalid_parameter", "temperature: expected a number"),
        ({"text": "a", "temperature": 3}, 422, "invalid_parameter", "temperature: must be between"),
        ({"text": "a", "temperature": float("nan")}, 422, "invalid_parameter", "finite"),
        ({"text": "a", "txt": "typo"}, 422, "invalid_parameter", "unknown field(s): txt"),
        ({"text": "a", "output_format": "mp9"}, 422, "invalid_parameter", "output_format"),
        ({"text": "a", "voice_id": ""}, 422, "invalid_parameter", "voice_id"),
        ([1, 2], 400, "bad_request", "JSON object"),
    ],
)
def test_parse_json_params_rejects_bad_input(data: Any, status: int, code: str, fragment: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_json_params(GenerateParams, data, max_text_chars=100)
    assert info.value.status == status
    assert info.value.code == code
    assert fragment in info.value.message


def test_parse_query_params_converts_and_checks_chunk_size() -> None:
    params = parse_query_params(SseParams, {"text": "hi", "chunk_size": "512", "temperature": "0.5"}, max_text_chars=10)
    assert (params.chunk_size, params.temperature) == (512, 0.5)
    for query, fragment in [
        ({"text": "hi", "chunk_size": "big"}, "chunk_size: expected an integer"),
        ({"text": "hi", "chunk_size": "10"}, "chunk_size: must be between"),
        ({"text": "hi", "colour": "red"}, "unknown parameter 'colour'"),
    ]:
        with pytest.raises(ApiError) as info:
            parse_query_params(SseParams, query, max_text_chars=10)
        assert info.value.status == 422
        assert fragment in info.value.message


def test_ws_params_accept_request_id_and_optional_chunk_size() -> None:
    params = parse_json_params(WsGenerateParams, {"text": "hi", "request_id": "r1"}, max_text_chars=10)
    assert params.request_id == "r1"
    assert params.chunk_size is None


def test_integral_floats_are_integers_as_json_schema_says() -> None:
    # JSON has one number type; 9043.0 is an integer to JSON Schema, so the description allows it.
    params = parse_json_params(WsGenerateParams, {"text": "hi", "sample_rate": 9043.0, "chunk_size": 512.0}, **LIMIT)
    assert (params.sample_rate, params.chunk_size) == (9043, 512)
    assert type(params.sample_rate) is int and type(params.chunk_size) is int


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (9043.5, "sample_rate: expected an integer, got 9043.5"),
        ("9043", "sample_rate: expected an integer, got str"),  # still no silent "5" -> 5
        (True, "sample_rate: expected an integer, got bool"),
        (float("inf"), "sample_rate: expected an integer, got inf"),
        (1e300, "sample_rate: must be between"),  # integral, then out of range
    ],
)
def test_integer_fields_still_refuse_what_is_not_an_integer(value: object, fragment: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_json_params(GenerateParams, {"text": "hi", "sample_rate": value}, **LIMIT)
    assert info.value.status == 422
    assert fragment in info.value.message


def test_null_sample_rate_means_the_engine_rate() -> None:
    assert parse_json_params(GenerateParams, {"text": "hi", "sample_rate": None}, **LIMIT).sample_rate is None


def test_query_integers_may_be_written_as_integral_decimals() -> None:
    params = parse_query_params(SseParams, {"text": "hi", "sample_rate": "16000.0", "chunk_size": "1e3"}, **LIMIT)
    assert (params.sample_rate, params.chunk_size) == (16000, 1000)
    for value in ("16000.5", "nan", "inf", "many"):
        with pytest.raises(ApiError) as info:
            parse_query_params(SseParams, {"text": "hi", "sample_rate": value}, **LIMIT)
        assert "sample_rate: expected an integer" in info.value.message
