"""ElevenLabs' socket messages as our commands, and its framing, without a server."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.support.engines import PacedEngine
from tts_trio.api.dialects.elevenlabs_protocol import (
    ElevenDialect,
    ElevenWriter,
    StreamQuery,
    char_alignment,
    parse_message,
    parse_output_format,
    parse_stream_query,
)
from tts_trio.api.websocket.protocol import (
    Append,
    CommandError,
    End,
    Flush,
    Limits,
    SendMessage,
    Stop,
    WsProtocol,
)
from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.formats import AudioFormat, WordTiming
from tts_trio.engines.pool import EnginePool
from tts_trio.errors import ApiError, BadRequest, InvalidJson, InvalidParameter, VoiceNotFound
from tts_trio.synthesis.drain import Shutdown
from tts_trio.synthesis.params import GenerateParams
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics, SynthesisJob
from tts_trio.synthesis.service import TtsService


def _resolve_voice(voice_id: str) -> None:
    if voice_id != "alba":
        raise VoiceNotFound(f"no voice {voice_id!r}")


POOL = EnginePool("paced", [PacedEngine()], AudioFormat(22050))
SERVICE = cast(
    TtsService, SimpleNamespace(pool=SimpleNamespace(audio_format=AudioFormat(22050)), resolve_voice=_resolve_voice)
)


def protocol() -> WsProtocol:
    def resolve(params: GenerateParams) -> tuple[SynthesisJob, EncodingChoice]:
        job = SynthesisJob(pool=POOL, text=params.text, voice=params.voice_id, shutdown=Shutdown())
        return job, EncodingChoice(params.output_format, params.sample_rate or 22050)

    return WsProtocol(Limits(4, 1000, 400), resolve, lambda: None)


def dialect(*, multi: bool, output_format: str = "pcm_16000") -> tuple[ElevenDialect, list[bool]]:
    closed: list[bool] = []
    query = parse_stream_query("21m00Tcm4TlvDq8N2WB2", {"output_format": output_format}, SERVICE)
    return ElevenDialect(query, multi=multi, on_close=lambda: closed.append(True)), closed


def run(eleven: ElevenDialect, rules: WsProtocol, message: dict[str, Any] | str) -> list[Any]:
    """The dialect's commands for one message, handled by the protocol as the session would."""
    text = message if isinstance(message, str) else json.dumps(message)
    out: list[Any] = []
    for command in eleven.commands(text, rules):
        out.append(command)
        if not isinstance(command, dict):
            out.extend(rules.handle(command))
    return out


def test_output_formats_and_voices() -> None:
    fmt = parse_output_format("pcm_24000", SERVICE)
    assert (fmt.choice, fmt.content_type, fmt.ulaw) == (EncodingChoice("pcm", 24000), "audio/pcm", False)
    assert parse_output_format("ulaw_8000", SERVICE).ulaw
    assert parse_output_format("mp3_44100_128", SERVICE).choice == EncodingChoice("mp3", 44100)
    for bad in ("wav_16000", "pcm", "ulaw_16000", "pcm_fast"):
        with pytest.raises(InvalidParameter, match="output_format"):
            parse_output_format(bad, SERVICE)
    assert parse_stream_query("alba", {}, SERVICE).voice_id == "alba"
    assert parse_stream_query("21m00Tcm4TlvDq8N2WB2", {"model_id": "m"}, SERVICE).voice_id == "default"


def test_the_query_flags_are_checked() -> None:
    query = {"auto_mode": "true", "sync_alignment": "false", "inactivity_timeout": "180", "language_code": "en"}
    assert parse_stream_query("x", query, SERVICE).fmt.name == "mp3_44100_128"
    with pytest.raises(InvalidParameter, match="auto_mode"):
        parse_stream_query("x", {"auto_mode": "yes"}, SERVICE)
    with pytest.raises(InvalidParameter, match="inactivity_timeout"):
        parse_stream_query("x", {"inactivity_timeout": "181"}, SERVICE)


def test_messages_are_refused_by_name() -> None:
    with pytest.raises(InvalidJson):
        parse_message("{oops")
    with pytest.raises(BadRequest):
        parse_message(b"binary")
    with pytest.raises(BadRequest):
        parse_message("[1]")
    with pytest.raises(InvalidParameter, match="shout"):
        parse_message('{"text": "hi", "shout": true}')
    with pytest.raises(InvalidParameter, match="flush"):
        parse_message('{"text": "hi", "flush": "yes"}')
    with pytest.raises(InvalidParameter, match="text"):
        parse_message('{"text": 3}')
    assert parse_message('{"text": " ", "xi-api-key": "k", "generation_config": {}}')["text"] == " "


def test_single_stream_init_text_and_end() -> None:
    eleven, closed = dialect(multi=False)
    rules = protocol()
    assert run(eleven, rules, {"text": " ", "voice_settings": {"speed": 1.2}, "generation_config": {}}) == []
    first = run(eleven, rules, {"text": "Hello there. How ", "try_trigger_generation": True})
    assert first[0] == Append(
        "default",
        "Hello there. How ",
        {"voice_id": "default", "output_format": "pcm", "sample_rate": 16000, "speed": 1.2},
    )
    assert run(eleven, rules, {"text": "are you? ", "flush": True})[:2] == [
        Append("default", "are you? ", {}),
        Flush("default"),
    ]
    assert run(eleven, rules, {"text": ""})[0] == End("default")
    assert closed == [True] and eleven.closing and eleven.farewell == []
    assert run(eleven, rules, {"text": "ignored"}) == []  # nothing after the end


def test_single_stream_that_never_spoke_says_final_before_closing() -> None:
    eleven, closed = dialect(multi=False)
    rules = protocol()
    run(eleven, rules, {"text": " "})
    assert run(eleven, rules, {"text": ""}) == []
    assert closed == [True] and eleven.farewell == [{"isFinal": True}]


def test_multi_contexts_flush_close_and_close_socket() -> None:
    eleven, closed = dialect(multi=True)
    rules = protocol()
    run(eleven, rules, {"text": " ", "context_id": "a"})
    assert run(eleven, rules, {"context_id": "a", "close_context": True}) == [{"isFinal": True, "contextId": "a"}]
    run(eleven, rules, {"text": "One sentence. ", "context_id": "b"})
    run(eleven, rules, {"text": "Held", "context_id": "c"})
    # A close right after a flush lets what was flushed be spoken; any other close stops at once.
    run(eleven, rules, {"text": "", "context_id": "b", "flush": True})
    assert run(eleven, rules, {"context_id": "b", "close_context": True})[0] == End("b")
    stopped = run(eleven, rules, {"context_id": "b", "close_context": True})
    assert stopped[0] == Stop("b")
    assert eleven.outgoing(next(e for e in stopped if isinstance(e, SendMessage)).payload) == {
        "isFinal": True,
        "contextId": "b",
    }
    assert [c for c in eleven.commands('{"close_socket": true}', rules)] == [End("c")]
    assert closed == [True] and eleven.farewell == []


def test_multi_keep_alive_speaks_nothing_held() -> None:
    eleven, _ = dialect(multi=True)
    rules = protocol()
    run(eleven, rules, {"text": "Done. ", "context_id": "k", "flush": True})
    assert run(eleven, rules, {"text": "", "context_id": "k"})[0] == Flush("k")
    run(eleven, rules, {"text": "Half a sen", "context_id": "k"})
    assert list(eleven.commands('{"text": "", "context_id": "k"}', rules)) == []


def test_errors_name_the_context_on_multi_only() -> None:
    eleven, _ = dialect(multi=True)
    with pytest.raises(CommandError) as refused:
        eleven.commands('{"text": "Hi.", "context_id": "z", "voice_settings": {"speed": "fast"}}', protocol())
    assert eleven.error(refused.value.error, refused.value.ids) == {
        "message": "voice_settings.speed: must be a number",
        "error": "invalid_parameter",
        "code": 422,
        "contextId": "z",
    }
    single, _ = dialect(multi=False)
    error: ApiError = InvalidJson("nope")
    assert single.error(error, {"context_id": "default"}) == {"message": "nope", "error": "invalid_json", "code": 400}
    with pytest.raises(InvalidParameter, match="context_id"):
        eleven.commands('{"text": "Hi.", "context_id": ""}', protocol())


def test_writer_frames() -> None:
    writer = ElevenWriter("c", ulaw=False)
    audio = json.loads(writer.audio(b"\x01\x00", 1))
    assert base64.b64decode(audio.pop("audio")) == b"\x01\x00"
    assert audio == {"isFinal": None, "normalizedAlignment": None, "alignment": None, "contextId": "c"}
    assert json.loads(writer.finished(StreamMetrics())[0]) == {"isFinal": True, "contextId": "c"}
    assert json.loads(ElevenWriter(None, ulaw=False).finished(StreamMetrics())[0]) == {"isFinal": True}
    error = json.loads(writer.error(StreamError("synthesis_failed", "boom")))
    assert error["error"] == "synthesis_failed" and error["contextId"] == "c"
    ulaw = json.loads(ElevenWriter(None, ulaw=True).audio(b"\x00\x00\x00\x00", 1))
    assert base64.b64decode(ulaw["audio"]) == b"\xff\xff"  # mu-law silence, a byte a sample


def test_alignment_spreads_words_over_their_characters() -> None:
    words = (WordTiming("Hi", 1.0, 1.2), WordTiming("there", 1.3, 1.8))
    alignment = char_alignment(SentenceTimings(2, "Hi there.", 1.0, 2.0, words))
    assert "".join(alignment["chars"]) == "Hi there. "
    starts, durations = alignment["charStartTimesMs"], alignment["charDurationsMs"]
    assert len(starts) == len(durations) == 10
    assert starts[:2] == [1000, 1100] and starts[3] == 1300  # "H", "i", then "t" of "there"
    assert starts == sorted(starts) and starts[-1] == 2000 and durations[-1] == 0
    # Without word timings the sentence is spread evenly; an unknown word is skipped.
    even = char_alignment(SentenceTimings(0, "abcd", 0.0, 0.4, (WordTiming("zz", 0.0, 0.1),)))
    assert even["charStartTimesMs"] == [0, 100, 200, 300, 400]
    assert even["charDurationsMs"] == [100, 100, 100, 100, 0]


def test_query_object_is_what_the_dialect_uses() -> None:
    query = parse_stream_query("alba", {"output_format": "ulaw_8000"}, SERVICE)
    assert isinstance(query, StreamQuery) and query.fmt.ulaw
    eleven = ElevenDialect(query, multi=False)
    rules = protocol()
    run(eleven, rules, {"text": "Hi there. "})
    assert eleven.context_writer(rules.contexts["default"]) == ElevenWriter(None, ulaw=True)
