"""Deepgram's rules message by message, without a socket: query and messages in, effects out."""

from __future__ import annotations

import json

import pytest

from tts_trio.api.dialects.deepgram_protocol import (
    MAX_SEGMENTS,
    CancelSegments,
    Clear,
    Close,
    CloseSocket,
    EndSegment,
    Flush,
    Problem,
    SendMessage,
    Sentences,
    Speak,
    SpeakRules,
    StartSegment,
    g711_wav_header,
    parse_message,
    parse_query,
    voice_for_model,
)
from tts_trio.errors import InvalidParameter, ShuttingDown


def rules(max_text_chars: int = 1000) -> SpeakRules:
    return SpeakRules(max_text_chars=max_text_chars, max_sentence_chars=400, check_open=lambda: None)


def test_query_defaults_are_deepgrams() -> None:
    query = parse_query({}, rest=False)
    assert (query.encoding, query.sample_rate, query.container, query.output_format) == (
        "linear16",
        24000,
        "none",
        "pcm",
    )
    rest = parse_query({"encoding": "mulaw"}, rest=True)
    assert (rest.sample_rate, rest.container, rest.content_type) == (8000, "wav", "audio/wav")
    assert rest.head().startswith(b"RIFF")
    assert parse_query({"encoding": "linear16", "container": "wav"}, rest=True).output_format == "wav"
    assert parse_query({"encoding": "mp3"}, rest=True).output_format == "mp3"


def test_query_takes_what_the_sdks_send() -> None:
    # The REST SDK sends sample_rate as a float; LiveKit sends mip_opt_out.
    query = parse_query({"sample_rate": "16000.0", "mip_opt_out": "false", "model": "aura-2-thalia-en"}, rest=True)
    assert query.sample_rate == 16000 and query.model == "aura-2-thalia-en"


@pytest.mark.parametrize(
    ("query", "rest", "field"),
    [
        ({"encoding": "mp3"}, False, "encoding"),
        ({"encoding": "vorbis"}, True, "encoding"),
        ({"sample_rate": "fast"}, False, "sample_rate"),
        ({"sample_rate": "16000.5"}, False, "sample_rate"),
        ({"encoding": "mulaw", "sample_rate": "24000"}, False, "sample_rate"),
        ({"sample_rate": "96000"}, False, "sample_rate"),
        ({"container": "ogg"}, True, "container"),
        ({"speed": "nan"}, False, "speed"),
        ({"speed": "9"}, False, "speed"),
        ({"callback": "https://example.com"}, True, "callback"),
        ({"colour": "blue"}, False, "colour"),
    ],
)
def test_bad_queries_name_the_parameter(query: dict[str, str], rest: bool, field: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        parse_query(query, rest=rest)
    assert raised.value.details["field"] == field


def test_unknown_models_get_the_default_voice() -> None:
    assert voice_for_model("aura-2-thalia-en", lambda model: False) == "default"
    assert voice_for_model("en-gb", lambda model: model == "en-gb") == "en-gb"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (None, "INVALID_MESSAGE"),
        (b"{}", "INVALID_MESSAGE"),
        ("{", "INVALID_JSON"),
        ("[1]", "INVALID_MESSAGE"),
        ("{}", "UNKNOWN_MESSAGE_TYPE"),
        ('{"type": "Sing"}', "UNKNOWN_MESSAGE_TYPE"),
        ('{"type": "Speak", "text": 5}', "INVALID_TEXT"),
        ('{"type": "Speak", "text": "\\ud800"}', "INVALID_TEXT"),
    ],
)
def test_bad_messages_are_problems(message: str | bytes | None, code: str) -> None:
    with pytest.raises(Problem) as raised:
        parse_message(message)
    assert raised.value.code == code


def test_messages() -> None:
    assert parse_message(json.dumps({"type": "Speak", "text": "a\x07b"})) == Speak("a b")
    assert parse_message('{"type": "Flush"}') == Flush()
    assert parse_message('{"type": "Clear"}') == Clear()
    assert parse_message('{"type": "Close"}') == Close()


def test_sentences_go_to_one_segment_until_flush() -> None:
    socket = rules()
    effects = socket.handle(Speak("Hello there. How"))
    segment = socket.live[0]
    assert effects == [StartSegment(segment), Sentences(segment, ("Hello there.",))]
    assert socket.handle(Speak(" are you")) == []
    effects = socket.handle(Flush())
    assert effects == [Sentences(segment, ("How are you",)), EndSegment(segment)]
    assert segment.sequence_id == 0
    # The next text starts the next segment; the flushed one stays live until spoken.
    effects = socket.handle(Speak("Next one. And"))
    assert isinstance(effects[0], StartSegment) and effects[0].segment is not segment
    assert socket.live == [segment, effects[0].segment]
    socket.segment_ended(segment)
    assert socket.live == [effects[0].segment]


def test_flush_with_nothing_held_still_gets_its_flushed() -> None:
    socket = rules()
    effects = socket.handle(Flush())
    assert isinstance(effects[0], StartSegment) and effects[1] == EndSegment(effects[0].segment)
    assert effects[0].segment.sequence_id == 0


def test_clear_cancels_every_live_segment_and_forgets_held_text() -> None:
    socket = rules()
    socket.handle(Speak("One sentence. Two"))
    socket.handle(Flush())
    socket.handle(Speak("Three sentence. Four"))
    live = tuple(socket.live)
    assert socket.handle(Clear()) == [CancelSegments(live), SendMessage({"type": "Cleared", "sequence_id": 1})]
    assert not socket.busy()
    effects = socket.handle(Flush())  # "Four" was dropped with the rest
    assert [type(effect) for effect in effects] == [StartSegment, EndSegment]
    assert effects[0].segment.sequence_id == 2  # type: ignore[union-attr]


def test_close_speaks_what_is_held_without_a_flushed() -> None:
    socket = rules()
    socket.handle(Speak("Held text"))
    effects = socket.handle(Close())
    assert isinstance(effects[0], StartSegment)
    segment = effects[0].segment
    assert effects[1:] == [Sentences(segment, ("Held text",)), EndSegment(segment), CloseSocket()]
    assert segment.sequence_id is None
    with pytest.raises(Problem) as raised:
        socket.handle(Speak("more"))
    assert raised.value.code == "SOCKET_CLOSING"
    assert rules().handle(Close()) == [CloseSocket()]


def test_text_limit_holds_per_segment() -> None:
    socket = rules(max_text_chars=20)
    socket.handle(Speak("0123456789"))
    with pytest.raises(Problem) as raised:
        socket.handle(Speak("01234567890"))
    assert raised.value.code == "TEXT_LENGTH_EXCEEDED"
    socket.handle(Flush())
    socket.handle(Speak("01234567890"))  # a new segment has room again


def test_segments_waiting_are_bounded() -> None:
    socket = rules()
    for _ in range(MAX_SEGMENTS):
        socket.handle(Flush())
    with pytest.raises(Problem) as raised:
        socket.handle(Flush())
    assert raised.value.code == "TOO_MANY_SEGMENTS"
    socket.segment_ended(socket.live[0])
    effects = socket.handle(Flush())
    assert effects[0].segment.sequence_id == MAX_SEGMENTS  # type: ignore[union-attr]  # the refused one used none


def test_speak_is_refused_while_the_server_drains() -> None:
    def closed() -> None:
        raise ShuttingDown("the server is shutting down")

    socket = SpeakRules(max_text_chars=100, max_sentence_chars=400, check_open=closed)
    with pytest.raises(Problem) as raised:
        socket.handle(Speak("Hello."))
    assert raised.value.code == "SHUTTING_DOWN"


def test_g711_wav_header() -> None:
    header = g711_wav_header("alaw", 8000)
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt " and header[20:22] == b"\x06\x00"
