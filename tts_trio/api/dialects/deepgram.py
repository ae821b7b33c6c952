"""Deepgram-compatible text to speech: ``WS /v1/speak`` and ``POST /v1/speak`` (see docs/deepgram.md).

Clients written for Deepgram's Aura API (the ``deepgram-sdk``, LiveKit's and
Pipecat's Deepgram plugins) work by pointing their base URL here. The
rules (query, messages, segments, sequence ids) live in
:mod:`.deepgram_protocol`; this module is the I/O.

The socket has one ordered audio stream, so segments (text between
Flushes) are spoken by one task, one after the other: a segment's audio,
then its ``Flushed``, then the next segment's audio. Within a segment,
sentences are synthesized as soon as they are complete, so the first
audio does not wait for the ``Flush``. A ``Clear`` cancels every segment's
scope; all sends go through one lock and are shielded (half a frame would
corrupt the socket), so the ``Cleared`` that the reader sends after the
cancel queues behind any audio send in flight, and a cancelled task cannot
start another: every binary frame after ``Cleared`` belongs to later text.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import attrs
import h11
import trio
from quart import Blueprint, Response, current_app, request, websocket

from tts_trio import __version__
from tts_trio.api.dialects.deepgram_protocol import (
    CancelSegments,
    CloseSocket,
    Effect,
    EndSegment,
    Problem,
    Segment,
    SendMessage,
    Sentences,
    SpeakQuery,
    SpeakRules,
    StartSegment,
    g711,
    parse_message,
    parse_query,
    problem_for,
    voice_for_model,
    warning,
)
from tts_trio.api.json_body import read_json_body
from tts_trio.api.response_body import relayed_body
from tts_trio.api.state import current_service, current_settings
from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.output import EncodedOutput
from tts_trio.errors import ApiError, InvalidParameter, Overloaded, ShuttingDown, VoiceNotFound, VoiceNotSupported
from tts_trio.settings import Settings
from tts_trio.synthesis.params import GenerateParams, parse_json_params
from tts_trio.synthesis.pipeline import SentenceTimings, StreamError, StreamMetrics, SynthesisJob, open_audio_stream
from tts_trio.synthesis.relay import Relay
from tts_trio.synthesis.service import TtsService

log = logging.getLogger(__name__)
blueprint = Blueprint("deepgram", __name__)
PROTOCOL = "deepgram"


class ClientStalled(Exception):
    """A send to the client did not complete in time; the socket is dropped."""


# -- shared: query -> job ------------------------------------------------------------
def _params(query: SpeakQuery, service: TtsService, text: str) -> GenerateParams:
    def is_voice(model: str) -> bool:
        try:
            service.resolve_voice(model)
        except (VoiceNotFound, VoiceNotSupported):
            return False  # a custom voice this engine cannot clone: the default voice, as for any other name
        return True

    data = {
        "text": text,
        "voice_id": voice_for_model(query.model, is_voice),
        "output_format": query.output_format,
        "sample_rate": query.sample_rate,
        "speed": query.speed,
    }
    return parse_json_params(GenerateParams, data, max_text_chars=current_settings().max_text_chars)


def _resolve(service: TtsService, params: GenerateParams) -> tuple[SynthesisJob, EncodingChoice]:
    job = service.job(params)
    return job, service.encoding(params, job)


def _query_args(args: Any) -> dict[str, str]:
    return {key: str(value) for key, value in args.items()}


def _model_uuid(engine: str, model: str) -> str:
    """A stable id for what serves ``model`` here (Deepgram's Metadata carries one)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tts-trio:{engine}:{model}"))


# -- REST ------------------------------------------------------------------------
def _rest_error(error: ApiError, request_id: str) -> Response:
    """Deepgram's REST error body, with our status (4xx for what the client can fix)."""
    body = {"err_code": error.code.upper(), "err_msg": error.message, "request_id": request_id}
    response = Response(json.dumps(body), status=error.status, mimetype="application/json")
    retry_after = error.details.get("retry_after")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@attrs.frozen
class _BodyWriter:
    """The raw audio as it is encoded (G.711 made from PCM); an error can only end the body early."""

    law: str | None
    chunk_size: None = None
    message_overhead: int = 0
    carry: list[bytes] = attrs.field(factory=lambda: [b""])

    def audio(self, piece: bytes, index: int) -> bytes:
        return _G711Carry.convert(self.law, self.carry, piece)

    def timings(self, timings: SentenceTimings) -> None:
        return None

    def error(self, error: StreamError) -> None:
        return None

    def finished(self, metrics: StreamMetrics) -> Sequence[bytes]:
        return ()


class _G711Carry:
    """G.711 needs whole 16-bit samples; an odd byte waits for the next piece."""

    @staticmethod
    def convert(law: str | None, carry: list[bytes], piece: bytes) -> bytes:
        if law is None:
            return piece
        data = carry[0] + piece
        cut = len(data) - len(data) % 2
        carry[0] = data[cut:]
        return g711(law, data[:cut])


@blueprint.post("/v1/speak")
async def speak_rest() -> Any:
    """Deepgram's ``POST /v1/speak``: the whole audio for ``{"text": ...}``, streamed as it is made."""
    service = current_service()
    settings = current_settings()
    request_id = str(uuid.uuid4())
    try:
        query = parse_query(_query_args(request.args), rest=True)
        body = await read_json_body(settings.max_body_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise InvalidParameter('the body must be a JSON object {"text": "..."}', field="text")
        if set(body) != {"text"}:
            unknown = ", ".join(sorted(set(body) - {"text"}))[:200]
            raise InvalidParameter(f"unknown field(s): {unknown}", field="text")
        params = _params(query, service, body["text"])
        job, choice = _resolve(service, params)
        place = await service.admission.acquire()
    except ApiError as error:
        return _rest_error(error, request_id)
    nursery: trio.Nursery = current_app.nursery  # type: ignore[attr-defined]
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "dg-request-id": request_id,
        "dg-model-name": query.model,
        "dg-model-uuid": _model_uuid(job.pool.name, query.model),
        "dg-char-count": str(len(params.text)),
    }
    writer = _BodyWriter(query.law)
    audio = relayed_body(nursery, service, job, choice, place, writer, protocol=PROTOCOL, head=query.head())
    response = Response(audio, mimetype=query.content_type, headers=headers)
    place.bind(audio)  # a body that never runs still gives its place back
    response.timeout = None
    return response


# -- WebSocket -------------------------------------------------------------------
@attrs.define
class _SocketWriter:
    """A segment's frames: binary audio, and a ``Warning`` if synthesis failed."""

    law: str | None
    chunk_size: None = None
    message_overhead: int = 0
    carry: list[bytes] = attrs.field(factory=lambda: [b""])

    def audio(self, piece: bytes, index: int) -> bytes:
        return _G711Carry.convert(self.law, self.carry, piece)

    def timings(self, timings: SentenceTimings) -> None:
        return None

    def error(self, error: StreamError) -> str:
        return json.dumps(warning(error.code.upper(), error.message))

    def finished(self, metrics: StreamMetrics) -> Sequence[str | bytes]:
        return ()


@attrs.define(eq=False)
class _SegmentTask:
    """The I/O side of a segment: where its sentences go and the scope a Clear cancels."""

    segment: Segment
    sentences: trio.MemorySendChannel[str]
    receive: trio.MemoryReceiveChannel[str]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    text_ended: bool = False


@blueprint.websocket("/v1/speak")
async def speak_ws() -> None:
    service = current_service()
    settings = current_settings()
    # Refused before the upgrade (an HTTP 4xx, as Deepgram does) when the query is wrong.
    query = parse_query(_query_args(websocket.args), rest=False)
    params = _params(query, service, "-")
    _resolve(service, params)
    session = _Session(websocket._get_current_object(), service, settings, query, params)  # type: ignore[attr-defined]
    await session.run()


class _Session:
    """One Deepgram socket: the reader, one task speaking segments in order, a drain watcher."""

    def __init__(self, ws: Any, service: TtsService, settings: Settings, query: SpeakQuery, params: GenerateParams):
        self.ws = ws
        self.service = service
        self.settings = settings
        self.query = query
        self.params = params
        self.rules = SpeakRules(
            max_text_chars=settings.max_text_chars,
            max_sentence_chars=settings.max_sentence_chars,
            check_open=service.shutdown.check,
        )
        self._send_lock = trio.Lock()
        # The rules bound the live segments; cleared ones left here are skipped at once.
        self._queue_send, self._queue_receive = trio.open_memory_channel[_SegmentTask](math.inf)
        self._tasks: dict[Segment, _SegmentTask] = {}
        self._streaming = 0
        #: Set once the socket is closed: later sends are dropped (the session is being cancelled).
        self._closed = False
        #: Replaced each time a stream ends, so the drain can wait for the socket to go quiet.
        self._work_ended = trio.Event()

    async def run(self) -> None:
        try:
            await self.ws.accept()
        except h11.LocalProtocolError:
            log.info("the WebSocket handshake could not be completed: the client's connection is broken")
            return
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._close_when_drained, nursery.cancel_scope)
                await self._send_json(self._metadata())
                async with trio.open_nursery() as work:
                    work.start_soon(self._run_segments)
                    await self._read()
                # Close: every segment has been spoken.
                await self._close(1000, "")
                nursery.cancel_scope.cancel()
        except* ClientStalled:
            log.warning("dropped a Deepgram WebSocket client that read nothing for %g s", self.settings.send_timeout)

    def _metadata(self) -> dict[str, Any]:
        engine = self.service.pool.name
        return {
            "type": "Metadata",
            "request_id": str(uuid.uuid4()),
            "model_name": self.query.model,
            "model_version": f"tts-trio-{__version__}-{engine}",
            "model_uuid": _model_uuid(engine, self.query.model),
        }

    async def _read(self) -> None:
        """Messages until Close (the caller then waits for the segments)."""
        while True:
            message = await self.ws.receive()
            try:
                effects = self.rules.handle(parse_message(message))
            except Problem as problem:
                await self._send_problem(problem)
                continue
            if await self._apply(effects):
                return

    async def _apply(self, effects: list[Effect]) -> bool:
        """Carry out ``effects`` in order; True once the socket is closing."""
        for effect in effects:
            if isinstance(effect, StartSegment):
                send, receive = trio.open_memory_channel[str](math.inf)  # bounded by the text limit
                task = _SegmentTask(effect.segment, send, receive)
                self._tasks[effect.segment] = task
                self._queue_send.send_nowait(task)
            elif isinstance(effect, Sentences):
                for sentence in effect.sentences:
                    self._tasks[effect.segment].sentences.send_nowait(sentence)
            elif isinstance(effect, EndSegment):
                self._tasks[effect.segment].sentences.close()
            elif isinstance(effect, CancelSegments):
                for segment in effect.segments:
                    cleared = self._tasks.get(segment)
                    if cleared is not None:
                        del self._tasks[segment]
                        cleared.scope.cancel()
                        cleared.sentences.close()
                if effect.segments:
                    self.service.stream_cancelled("stop")
            elif isinstance(effect, SendMessage):
                # Behind any audio send in flight (the lock); what was cancelled cannot start another.
                await self._send_json(effect.payload)
            elif isinstance(effect, CloseSocket):
                self._queue_send.close()
                return True
        return False

    async def _close_when_drained(self, session: trio.CancelScope) -> None:
        """When the server drains, close with 1001 once no stream is running.

        A running stream ends by itself or with a ``shutting_down`` warning at
        the drain deadline; segments not started yet are refused by admission.
        """
        await self.service.shutdown.started.wait()
        while self._streaming:
            await self._work_ended.wait()
        with contextlib.suppress(ClientStalled):
            await self._close(1001, "the server is shutting down")
        session.cancel()

    # -- segments, one at a time ------------------------------------------------
    async def _run_segments(self) -> None:
        async for task in self._queue_receive:
            try:
                with task.scope:
                    await self._speak_segment(task)
            finally:
                task.receive.close()
                if self._tasks.get(task.segment) is task:
                    del self._tasks[task.segment]
                self.rules.segment_ended(task.segment)

    async def _speak_segment(self, task: _SegmentTask) -> None:
        """Stream the segment's sentences (no engine place held while no text comes), then its Flushed."""
        while not task.text_ended:
            try:
                first = await task.receive.receive()
            except trio.EndOfChannel:
                break
            await self._stream(task, first)
        if task.segment.sequence_id is not None:
            await self._send_json({"type": "Flushed", "sequence_id": task.segment.sequence_id})

    async def _stream(self, task: _SegmentTask, first: str) -> None:
        """One engine stream of a segment: from ``first`` until its text ends, or none comes for a while."""
        try:
            place = await self.service.admission.acquire()
        except (Overloaded, ShuttingDown) as error:
            self._discard_held(task)  # one warning for what was refused, not one per sentence
            await self._send_problem(problem_for(error), "; the text so far was not spoken")
            return
        self._streaming += 1
        try:
            try:
                # Resolved again now: the engine may have been switched since the socket opened.
                job, choice = _resolve(self.service, attrs.evolve(self.params, text=first))
            except ApiError as error:
                await self._send_problem(problem_for(error))
                return
            fmt = job.pool.audio_format
            with self.service.track_stream(job.pool):
                async with trio.open_nursery() as nursery:
                    receive, metrics = open_audio_stream(nursery, job, self._sentences(task, first))
                    relay: Relay[str | bytes] = Relay(
                        receive, metrics, EncodedOutput(fmt, choice), _SocketWriter(self.query.law)
                    )
                    async for frames in relay.batches():
                        for frame in frames:
                            await self._send(frame)
            if relay.completed and relay.failure is None:
                self.service.stream_finished(metrics, PROTOCOL)
        finally:
            place.release()
            self._streaming -= 1
            self._work_ended.set()
            self._work_ended = trio.Event()

    @staticmethod
    def _discard_held(task: _SegmentTask) -> None:
        """Drop the sentences of ``task`` that have arrived (the text after them still gets its chance)."""
        while True:
            try:
                task.receive.receive_nowait()
            except trio.WouldBlock:
                return
            except trio.EndOfChannel:
                task.text_ended = True
                return

    async def _sentences(self, task: _SegmentTask, first: str) -> AsyncIterator[str]:
        """``first``, then the segment's sentences; ends at its Flush, on idle, or when draining finds none waiting.

        Ending on idle gives the engine place back while the client thinks;
        the segment stays open and its next sentence starts a new stream.
        """
        yield first
        while True:
            sentence: str | None = None
            try:
                sentence = task.receive.receive_nowait()  # text already here is spoken, even while draining
            except trio.EndOfChannel:
                task.text_ended = True
                return
            except trio.WouldBlock:
                # Never yield inside a cancel scope: it would reach into the consumer.
                with self.service.shutdown.wait(), trio.move_on_after(self.settings.context_idle_timeout):
                    try:
                        sentence = await task.receive.receive()
                    except trio.EndOfChannel:
                        task.text_ended = True
                        return
            if sentence is None:
                return
            yield sentence

    # -- outgoing ------------------------------------------------------------------
    async def _close(self, code: int, reason: str) -> None:
        await self._locked(self.ws.close, code, reason)
        self._closed = True

    async def _send_problem(self, problem: Problem, addendum: str = "") -> None:
        """A refusal as Deepgram's ``Warning``, counted by protocol; the socket stays open."""
        self.service.metrics.protocol_errors.labels(PROTOCOL, problem.code).inc()
        await self._send_json(warning(problem.code, problem.description + addendum))

    async def _send_json(self, payload: dict[str, Any]) -> None:
        await self._send(json.dumps(payload, separators=(",", ":")))

    async def _send(self, data: str | bytes) -> None:
        await self._locked(self.ws.send, data)

    async def _locked(self, sending: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run one send under the lock, shielded (half a frame would corrupt the socket), within the send timeout."""
        async with self._send_lock:
            if self._closed:
                return  # the session is ending; a task that queued for the lock before its cancel sends nothing
            with trio.move_on_after(self.settings.send_timeout) as scope:
                scope.shield = True
                await sending(*args)
            if scope.cancelled_caught:
                raise ClientStalled("the client did not read for too long")
