"""The WebSocket rules message by message, without a socket: commands in, effects out."""

from __future__ import annotations

import json

import pytest

from tests.support.engines import PacedEngine
from tts_trio.api.websocket.protocol import (
    Append,
    CancelContext,
    CancelRunning,
    CloseContext,
    CommandError,
    Effect,
    End,
    Enqueue,
    Flush,
    Generate,
    Generation,
    Limits,
    OpenContext,
    Ping,
    SendMessage,
    Speak,
    Stop,
    WsProtocol,
    parse_command,
)
from tts_trio.audio.encoding import EncodingChoice, choose_encoding
from tts_trio.audio.formats import AudioFormat
from tts_trio.engines.pool import EnginePool
from tts_trio.errors import ApiError, InvalidParameter
from tts_trio.synthesis.drain import Shutdown
from tts_trio.synthesis.params import GenerateParams
from tts_trio.synthesis.pipeline import Spoken, SynthesisJob
from tts_trio.synthesis.ssml import is_ssml

FMT = AudioFormat(sample_rate=16000)
POOL = EnginePool("paced", [PacedEngine()], FMT)


def make_protocol(max_queued: int = 2, max_text_chars: int = 100) -> tuple[WsProtocol, Shutdown]:
    shutdown = Shutdown()

    def resolve(params: GenerateParams) -> tuple[SynthesisJob, EncodingChoice]:
        if "bad" in params.text:
            raise InvalidParameter("text: invalid SSML at line 1 <bad>", field="text")
        # The service parses SSML into a script; here a document's script is the document itself.
        script = (Spoken(params.text, {}),) if is_ssml(params.text) else None
        job = SynthesisJob(pool=POOL, text=params.text, voice=None, shutdown=shutdown, script=script)
        return job, choose_encoding(params.output_format, params.sample_rate, FMT)

    return WsProtocol(Limits(max_queued, max_text_chars, 200), resolve, shutdown.check), shutdown


def send(protocol: WsProtocol, **message: object) -> list[Effect]:
    return protocol.handle(parse_command(json.dumps(message)))


def generation_of(effects: list[Effect]) -> Generation:
    (effect,) = effects
    assert isinstance(effect, Enqueue)
    return effect.generation


def refusal(protocol: WsProtocol, **message: object) -> CommandError:
    with pytest.raises(CommandError) as caught:
        send(protocol, **message)
    return caught.value


def test_messages_parse_into_typed_commands() -> None:
    assert parse_command('{"action": "ping"}') == Ping()
    assert parse_command('{"action": "stop"}') == Stop(None)
    assert parse_command('{"action": "stop", "context_id": "c"}') == Stop("c")
    assert parse_command('{"action": "generate", "text": "Hi."}') == Generate({"text": "Hi."})
    assert parse_command('{"action": "append", "context_id": "c", "text": "Hi\\u0007"}') == Append("c", "Hi ", {})
    assert parse_command('{"action": "flush", "context_id": "c"}') == Flush("c")
    assert parse_command('{"action": "end", "context_id": "c"}') == End("c")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"binary", "bad_request"),
        (None, "bad_request"),
        ("{not json", "invalid_json"),
        ("[1]", "bad_request"),
        ("{}", "bad_request"),
        ('{"action": "dance"}', "unknown_action"),
    ],
)
def test_bad_messages_are_refused_with_a_code(message: str | bytes | None, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_command(message)
    assert caught.value.code == code


def test_ping_is_answered_with_pong() -> None:
    protocol, _ = make_protocol()
    assert send(protocol, action="ping") == [SendMessage({"type": "pong"})]


def test_generations_queue_up_to_the_limit_then_queue_full_names_the_request() -> None:
    protocol, _ = make_protocol(max_queued=2)
    first = generation_of(send(protocol, action="generate", text="One."))
    assert first.request_id == "g1" and protocol.take(first) and protocol.running is first
    queued = [generation_of(send(protocol, action="generate", text=f"{n}.")) for n in (2, 3)]
    refused = refusal(protocol, action="generate", text="Four.", request_id="r4")
    assert refused.error.code == "queue_full" and refused.ids == {"request_id": "r4"}
    protocol.generation_ended(first)
    assert protocol.take(queued[0])  # the queue moves on; room again
    assert generation_of(send(protocol, action="generate", text="Five.")).request_id == "g5"


def test_stop_cancels_running_and_queued_and_answers_stopped_with_the_running_id() -> None:
    protocol, _ = make_protocol()
    running = generation_of(send(protocol, action="generate", text="One.", request_id="r1"))
    protocol.take(running)
    queued = generation_of(send(protocol, action="generate", text="Two."))
    effects = send(protocol, action="stop")
    assert effects == [CancelRunning(), SendMessage({"type": "stopped", "request_id": "r1"})]
    assert not protocol.take(queued)  # stopped before it started: never runs
    protocol.generation_ended(running)
    assert not protocol.busy()
    # A generate right after stop finds the queue empty.
    assert generation_of(send(protocol, action="generate", text="Three.")).epoch == protocol.epoch


def test_stop_with_nothing_running_still_answers_stopped() -> None:
    protocol, _ = make_protocol()
    assert send(protocol, action="stop") == [SendMessage({"type": "stopped", "request_id": None})]


def test_contexts_open_append_flush_and_end() -> None:
    protocol, _ = make_protocol()
    opened = send(protocol, action="append", context_id="c", text="Hello there. How", speed=1.5)
    assert isinstance(opened[0], OpenContext)
    context = opened[0].context
    assert context.choice.output_format == "pcm"  # a context's own default
    assert opened[1:] == [Speak(context, ("Hello there.",))]
    assert send(protocol, action="append", context_id="c", text=" are") == []  # not certain yet
    assert send(protocol, action="flush", context_id="c") == [Speak(context, ("How are",))]
    assert send(protocol, action="flush", context_id="c") == [Speak(context, ())]  # keep-alive only
    assert send(protocol, action="end", context_id="c") == [CloseContext(context)]
    assert refusal(protocol, action="append", context_id="c", text="More.").error.code == "invalid_parameter"
    protocol.context_ended(context)
    assert not protocol.busy()


def test_an_ssml_context_speaks_each_whole_document_with_the_contexts_options() -> None:
    protocol, _ = make_protocol(max_text_chars=400)
    opened = send(protocol, action="append", context_id="s", text="<speak>One. Two", speed=1.5)
    context = opened[0].context  # type: ignore[union-attr]
    assert opened[1:] == []  # nothing is certain before the document ends
    assert context.params is not None and context.params.speed == 1.5 and context.params.engine == "paced"
    said = send(protocol, action="append", context_id="s", text="</speak> <speak>Three.</speak><speak>Fo")
    # Each document is checked as a request's text is (trimmed, marks removed, length).
    assert said == [Speak(context, (Spoken("<speak>One. Two</speak>", {}), Spoken("<speak>Three.</speak>", {})))]
    assert send(protocol, action="append", context_id="s", text="ur.</speak>") == [
        Speak(context, (Spoken("<speak>Four.</speak>", {}),))
    ]
    assert send(protocol, action="flush", context_id="s") == [Speak(context, ())]
    assert send(protocol, action="end", context_id="s") == [CloseContext(context)]


def test_a_bad_ssml_document_costs_only_itself_even_the_first() -> None:
    protocol, _ = make_protocol(max_text_chars=400)
    effects = send(protocol, action="append", context_id="s", text="<speak>bad</speak><speak>Good.</speak> Loose.")
    assert isinstance(effects[0], OpenContext)  # the session opens it: later commands find it
    context = effects[0].context
    assert effects[1] == Speak(context, (Spoken("<speak>Good.</speak>", {}),))
    assert isinstance(effects[2], SendMessage) and effects[2].payload["context_id"] == "s"
    assert "<bad>" in effects[2].payload["message"]
    # Loose text between documents is not SSML: refused with the document it runs into.
    (again,) = send(protocol, action="append", context_id="s", text="<speak>Fine.</speak>")
    assert isinstance(again, SendMessage) and "every text is a <speak> document" in again.payload["message"]
    assert send(protocol, action="append", context_id="s", text="<speak>Fine.</speak>") == [
        Speak(context, (Spoken("<speak>Fine.</speak>", {}),))
    ]
    assert send(protocol, action="end", context_id="s") == [CloseContext(context)]


def test_marks_and_control_characters_from_any_dialect_are_cleaned_in_contexts() -> None:
    protocol, _ = make_protocol()
    effects = protocol.handle(Append("c", "Hi \ue000ʃ\ue001x\ue002 there.\u0007 More", {}))
    (speak,) = [effect for effect in effects if isinstance(effect, Speak)]
    assert speak.sentences == ("Hi  ʃ x  there.",)


def test_plain_text_after_a_plain_first_append_is_never_ssml() -> None:
    protocol, _ = make_protocol()
    opened = send(protocol, action="append", context_id="p", text="Hi. <speak>not markup</speak>")
    assert opened[1:] == [Speak(opened[0].context, ("Hi.",))]  # type: ignore[union-attr]


def test_context_rules_refuse_with_the_context_id() -> None:
    protocol, _ = make_protocol(max_text_chars=20)
    send(protocol, action="append", context_id="c", text="Short.")
    again = refusal(protocol, action="append", context_id="c", text="x", voice_id="en")
    assert again.error.code == "invalid_parameter" and again.ids == {"context_id": "c"}
    assert refusal(protocol, action="flush", context_id="nope").ids == {"context_id": "nope"}
    too_long = send(protocol, action="append", context_id="c", text="y" * 20)
    assert isinstance(too_long[0], CancelContext) and not too_long[0].stopped
    assert isinstance(too_long[1], SendMessage) and too_long[1].payload["code"] == "text_too_long"


def test_stop_of_one_context_and_stop_of_everything() -> None:
    protocol, _ = make_protocol()
    a = send(protocol, action="append", context_id="a", text="One.")[0]
    b = send(protocol, action="append", context_id="b", text="Two.")[0]
    assert isinstance(a, OpenContext) and isinstance(b, OpenContext)
    assert send(protocol, action="stop", context_id="a") == [
        CancelContext(a.context, stopped=True),
        SendMessage({"type": "stopped", "context_id": "a"}),
    ]
    with pytest.raises(ApiError):
        send(protocol, action="stop", context_id="a")
    assert send(protocol, action="stop") == [
        CancelContext(b.context, stopped=True),
        SendMessage({"type": "stopped", "request_id": None}),
    ]
    assert not protocol.busy()
    # The id is free again at once.
    assert isinstance(send(protocol, action="append", context_id="b", text="Again.")[0], OpenContext)


def test_errors_leave_the_protocol_usable() -> None:
    protocol, _ = make_protocol()
    assert refusal(protocol, action="generate", text="").error.code == "empty_text"
    assert refusal(protocol, action="generate", text="Hi.", output_format="ogg").error.code == "invalid_parameter"
    assert send(protocol, action="ping") == [SendMessage({"type": "pong"})]
    assert generation_of(send(protocol, action="generate", text="Hi.")).request_id == "g1"


async def test_new_work_is_refused_while_the_server_drains() -> None:
    protocol, shutdown = make_protocol()
    shutdown.begin(1.0)
    assert refusal(protocol, action="generate", text="Hi.").error.code == "shutting_down"
    assert refusal(protocol, action="append", context_id="c", text="Hi.").error.code == "shutting_down"
