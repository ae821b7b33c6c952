"""Cartesia's request fields and sample encodings, without a server."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from tts_trio.api.dialects.cartesia_protocol import (
    CartesiaWriter,
    convert_samples,
    parse_output_format,
    speed_of,
    wav_header,
    written_words,
)
from tts_trio.audio.formats import WordTiming
from tts_trio.errors import InvalidParameter
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError

ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2").tobytes()


def test_g711_encodings_give_one_byte_per_sample() -> None:
    mulaw = convert_samples(ALL_SAMPLES, "pcm_mulaw")
    alaw = convert_samples(ALL_SAMPLES, "pcm_alaw")
    assert len(mulaw) == len(alaw) == 65536
    assert mulaw[32768] == 0xFF and alaw[32768] == 0xD5  # silence in each law


def test_float_samples_are_scaled_into_minus_one_to_one() -> None:
    floats = np.frombuffer(convert_samples(ALL_SAMPLES, "pcm_f32le"), dtype="<f4")
    assert floats.min() == -1.0 and floats.max() < 1.0 and len(floats) == 65536
    assert convert_samples(ALL_SAMPLES, "pcm_s16le") == ALL_SAMPLES


def test_output_formats() -> None:
    raw = parse_output_format({"container": "raw", "encoding": "pcm_f32le", "sample_rate": 24000})
    assert (raw.choice_format, raw.sample_rate, raw.encoding) == ("pcm", 24000, "pcm_f32le")
    mp3 = parse_output_format({"container": "mp3", "sample_rate": 44100, "bit_rate": 128000})
    assert (mp3.choice_format, mp3.container) == ("mp3", "mp3")
    assert parse_output_format(None).encoding == "pcm_s16le"
    bad: object
    for bad in ({"container": "ogg"}, {"container": "raw", "encoding": "opus"}, {"sample_rate": "fast"}, []):
        with pytest.raises(InvalidParameter, match="output_format"):
            parse_output_format(bad)
    with pytest.raises(InvalidParameter, match="container"):
        parse_output_format({"container": "wav", "encoding": "pcm_s16le"}, containers=("raw",))


def test_wav_header_names_the_encoding() -> None:
    header = wav_header("pcm_mulaw", 8000)
    assert (
        len(header) == 44 and header[20:22] == (7).to_bytes(2, "little") and header[34:36] == (8).to_bytes(2, "little")
    )
    assert wav_header("pcm_f32le", 16000)[20:22] == (3).to_bytes(2, "little")


def test_speed_from_generation_config_or_a_name() -> None:
    assert speed_of({"generation_config": {"speed": 1.5}, "speed": "slow"}) == 1.5
    assert speed_of({"speed": "slow"}) == 0.8 and speed_of({}) == 1.0
    with pytest.raises(InvalidParameter):
        speed_of({"speed": "warp"})
    with pytest.raises(InvalidParameter):
        speed_of({"generation_config": {"speed": True}})


def test_writer_frames_are_cartesias_messages() -> None:
    writer = CartesiaWriter("ctx", "pcm_s16le", add_timestamps=True)
    assert writer.start(None, None) is None  # type: ignore[arg-type]
    chunk = json.loads(writer.audio(b"\x01\x00\x02\x00", 1))
    assert base64.b64decode(chunk.pop("data")) == b"\x01\x00\x02\x00" and chunk.pop("step_time") >= 0
    assert chunk == {"type": "chunk", "done": False, "status_code": 206, "context_id": "ctx"}
    words = (WordTiming("Hi", 0.0, 0.2), WordTiming("there", 0.2, 0.5))
    stamps = json.loads(writer.timings(SentenceTimings(1, "Hi there.", 0.0, 0.5, words)) or "")
    assert stamps["word_timestamps"] == {
        "words": ["Hi", "there", "."],
        "start": [0.0, 0.2, 0.5],
        "end": [0.2, 0.5, 0.5],
    }
    assert (
        CartesiaWriter("ctx", "pcm_s16le", add_timestamps=False).timings(SentenceTimings(1, "x", 0, 1, words)) is None
    )
    error = json.loads(writer.error(StreamError("context_idle", "no text")))
    assert (error["type"], error["status_code"], error["error_code"], error["done"]) == (
        "error",
        408,
        "context_idle",
        True,
    )
    assert [json.loads(m) for m in writer.finished(None)] == [  # type: ignore[arg-type]
        {"type": "done", "done": True, "status_code": 200, "context_id": "ctx"}
    ]


def _said(text: str, *words: str) -> list[str]:
    timings = tuple(WordTiming(word, i * 0.1, i * 0.1 + 0.1) for i, word in enumerate(words))
    return [word.word for word in written_words(SentenceTimings(0, text, 0.0, 1.0, timings))]


def test_punctuation_after_the_last_word_is_one_more_word() -> None:
    """LiveKit's plugin matches the words to the text it sent; a full stop left over breaks every later sentence."""
    assert _said("It writes it. ", "It", "writes", "it") == ["It", "writes", "it", "."]
    assert _said('"Really?!" she said... ', "Really", "she", "said") == ["Really", "she", "said", "..."]
    assert _said("Hello, world", "Hello", "world") == ["Hello", "world"]  # nothing after the last word
    assert _said("HELLO there!", "hello", "there") == ["hello", "there", "!"]  # the engine's case is kept
    stamps = written_words(SentenceTimings(0, "Go.", 0.0, 1.0, (WordTiming("Go", 0.25, 0.5),)))
    assert stamps[-1] == WordTiming(".", 0.5, 0.5)


def test_words_that_do_not_match_the_text_get_nothing_added() -> None:
    assert _said("At 3.30 p.m.", "At", "three", "thirty", "pm") == ["At", "three", "thirty", "pm"]
    assert _said("One two three.", "One", "two") == ["One", "two"]  # a word left unspoken is not punctuation
    assert (
        _said(
            "",
        )
        == []
    )
