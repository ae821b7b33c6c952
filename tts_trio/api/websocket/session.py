"""``WS /v1/tts/stream``: generate, stop and ping, plus text-in streaming contexts.

Client messages are JSON text. The actions of the original API:

* ``{"action": "generate", "text": ...}``: the server sends
  ``{"type": "start", ...}`` (request id and audio format), binary audio
  messages with a ``{"type": "timings", ...}`` message after each sentence,
  then ``{"type": "metrics", "data": {...}}`` and ``{"type": "done"}``. A
  ``generate`` while another runs is queued (up to ``ws_max_queued``) and
  starts when the previous one ends; beyond that the client gets a
  ``queue_full`` error.
* ``{"action": "stop"}`` cancels the running generation, every queued one and
  every context; the server answers ``{"type": "stopped"}`` after the last
  audio message of what it cancelled and never sends audio of it afterwards.
  ``{"action": "stop", "context_id": ...}`` stops one context.
* ``{"action": "ping"}`` is answered with ``{"type": "pong"}`` at once,
  between audio messages of running generations.

Text-in streaming, for LLM output (see docs/streaming-input.md):
``{"action": "append", "context_id", "text"}`` adds text to a context
(created by its first ``append``, which may also carry ``voice_id``,
``output_format``, ``sample_rate`` and ``speed``); sentences are spoken as
soon as their end is certain; ``flush`` speaks what is held; ``end`` says no
more text will come. Several contexts can run on one socket at once; their
audio comes as ``{"type": "audio", "context_id", "chunk": base64, "index"}``
so it cannot be confused.

Bad messages get ``{"type": "error", "code", "message"}`` and the socket
stays open.

When the server shuts down, new and queued work is refused with a
``shutting_down`` error, running work finishes or ends with that error at
the drain deadline, and then the socket is closed with 1001 (going away).

With ``output_format: "wav"`` (the default for ``generate``) each binary
message is a complete small WAV file, so a browser can hand every message to
``decodeAudioData`` (the original API's JavaScript client does). Every other format
is one continuous stream across the messages of a generation.

All sends go through one lock and are shielded from cancellation: a send
interrupted half-way would corrupt the socket for every later message.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import trio
from quart import Blueprint, websocket

from tts_trio.api.security import accept_subprotocol
from tts_trio.api.state import current_service, current_settings
from tts_trio.audio.encoding import EncodingChoice
from tts_trio.audio.formats import AudioChunk, AudioFormat, frame_aligned, split_chunks, wav_file
from tts_trio.audio.output import EncodedOutput
from tts_trio.errors import (
    ApiError,
    BadRequest,
    ContextIdle,
    InvalidJson,
    InvalidParameter,
    Overloaded,
    QueueFull,
    ShuttingDown,
    TextTooLong,
    UnknownAction,
)
from tts_trio.settings import Settings
from tts_trio.synthesis.admission import Place
from tts_trio.synthesis.params import ContextParams, WsGenerateParams, clean_text, parse_json_params
from tts_trio.synthesis.pipeline import StreamError, StreamMetrics, SynthesisJob, open_audio_stream
from tts_trio.synthesis.sentences import SentenceAssembler
from tts_trio.synthesis.service import TtsService

log = logging.getLogger(__name__)
blueprint = Blueprint("websocket", __name__)

#: Text-in contexts one socket may have open at once.
MAX_CONTEXTS = 16
_WAV_HEADER_BYTES = 44
#: Put in a context's sentence channel by a ``flush`` with nothing to speak (a sentence is never empty).
_KEEP_ALIVE = ""


class ClientStalled(Exception):
    """Raised when a send to the client did not complete in time; the socket is dropped."""


@attrs.frozen
class _Generation:
    job: SynthesisJob
    params: WsGenerateParams
    choice: EncodingChoice
    request_id: str
    epoch: int


@attrs.define
class _Context:
    """A text-in stream: text arrives in pieces, sentences go to the pipeline."""

    context_id: str
    job: SynthesisJob
    choice: EncodingChoice
    assembler: SentenceAssembler
    sentences: trio.MemorySendChannel[str]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    received_chars: int = 0
    ended: bool = False


@blueprint.websocket("/v1/tts/stream")
async def stream_ws() -> None:
    # The session keeps the connection object itself, not the context-local proxy.
    session = _Session(websocket._get_current_object(), current_service(), current_settings())  # type: ignore[attr-defined]
    await session.run(accept_subprotocol())


class _Session:
    """One WebSocket connection: a reader loop, a generation queue, text-in contexts."""

    def __init__(self, ws: Any, service: TtsService, settings: Settings) -> None:
        self.ws = ws
        self.service = service
        self.settings = settings
        self._send_lock = trio.Lock()
        self._epoch = 0
        self._counter = 0
        self._running: trio.CancelScope | None = None
        self._running_id: str | None = None
        self._queue_send, self._queue_receive = trio.open_memory_channel[_Generation](settings.ws_max_queued)
        #: Generations accepted and not yet ended (queued, or taken from the queue and running).
        self._generations = 0
        self._contexts: dict[str, _Context] = {}
        self._nursery: trio.Nursery | None = None
        #: Replaced each time work ends, so the drain can wait for the socket to go idle.
        self._work_ended = trio.Event()

    async def run(self, subprotocol: str | None) -> None:
        await self.ws.accept(subprotocol=subprotocol)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._run_generations)
            nursery.start_soon(self._close_when_drained, nursery.cancel_scope)
            while True:
                message = await self.ws.receive()
                try:
                    await self._dispatch(message)
                except ApiError as error:
                    await self._send_json({"type": "error", **error.to_dict()})

    def _ended_work(self) -> None:
        self._work_ended.set()
        self._work_ended = trio.Event()

    def _busy(self) -> bool:
        return self._generations > 0 or bool(self._contexts)

    async def _close_when_drained(self, session: trio.CancelScope) -> None:
        """When the server drains, close with 1001 once the running work has ended.

        Running work ends by itself or with a ``shutting_down`` error at the
        drain deadline; queued generations are refused by admission.
        """
        await self.service.shutdown.started.wait()
        while self._busy():
            await self._work_ended.wait()
        with contextlib.suppress(ClientStalled):
            await self._locked(self.ws.close, 1001, "the server is shutting down")
        session.cancel()

    # -- incoming ---------------------------------------------------------
    async def _dispatch(self, message: str | bytes | None) -> None:
        if message is None or isinstance(message, bytes):  # an empty frame arrives as None
            raise BadRequest("binary messages are not accepted; send JSON text")
        try:
            data = json.loads(message)
        except (json.JSONDecodeError, RecursionError):
            raise InvalidJson("the message is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("a message must be a JSON object with an 'action'")
        action = data.pop("action", None)
        if action == "ping":
            await self._send_json({"type": "pong"})
        elif action == "stop":
            await self._stop(data.get("context_id"))
        elif action in ("generate", "append", "flush", "end"):
            try:
                if action == "generate":
                    self._enqueue(data)
                else:
                    self._context_action(action, data)
            except ApiError as error:
                ids = {key: data[key][:128] for key in ("request_id", "context_id") if isinstance(data.get(key), str)}
                await self._send_json({"type": "error", **ids, **error.to_dict()})
        elif action is None:
            raise BadRequest("the message has no 'action'; use generate, stop, ping, append, flush or end")
        else:
            raise UnknownAction(f"unknown action {str(action)[:40]!r}; use generate, stop, ping, append, flush or end")

    def _enqueue(self, data: dict[str, Any]) -> None:
        self.service.shutdown.check()
        params = parse_json_params(WsGenerateParams, data, max_text_chars=self.settings.max_text_chars)
        job = self.service.job(params)
        choice = self.service.encoding(params, job)
        self._counter += 1
        request_id = params.request_id or f"g{self._counter}"
        try:
            self._queue_send.send_nowait(_Generation(job, params, choice, request_id, self._epoch))
            self._generations += 1
        except trio.WouldBlock:
            raise QueueFull(
                f"{self.settings.ws_max_queued} generations are already queued; wait for 'done' or send 'stop'",
                request_id=request_id,
            ) from None

    async def _stop(self, context_id: Any) -> None:
        if context_id is not None:
            context = self._contexts.pop(str(context_id), None)
            if context is None:
                raise InvalidParameter(f"no open context {str(context_id)[:40]!r}", field="context_id")
            context.scope.cancel()
            self.service.stream_cancelled("stop")
            await self._send_json({"type": "stopped", "context_id": context.context_id})
            return
        self._epoch += 1
        # Empty the queue now, so a generate right after stop finds room.
        while True:
            try:
                self._queue_receive.receive_nowait()
                self._generations -= 1
            except trio.WouldBlock:
                break
        stopped_id = self._running_id
        if self._running is not None:
            self._running.cancel()
            self.service.stream_cancelled("stop")
        for context in self._contexts.values():
            context.scope.cancel()
            self.service.stream_cancelled("stop")
        # Forgotten at once: the id is free again even while the engine winds down.
        self._contexts.clear()
        self._ended_work()
        # The send lock orders this after any audio send in flight; what was
        # cancelled cannot start another one.
        await self._send_json({"type": "stopped", "request_id": stopped_id})

    # -- text-in contexts ---------------------------------------------------
    def _context_action(self, action: str, data: dict[str, Any]) -> None:
        context_id = data.get("context_id")
        if not isinstance(context_id, str) or not 0 < len(context_id) <= 128:
            raise InvalidParameter("context_id: a string of 1 to 128 characters is required", field="context_id")
        context = self._contexts.get(context_id)
        if action == "append":
            text = data.get("text")
            if not isinstance(text, str) or not text:
                raise InvalidParameter("text: a non-empty string is required", field="text")
            text = clean_text(text)
            if context is None:
                context = self._open_context(context_id, data)
            elif set(data) - {"context_id", "text"}:
                raise InvalidParameter("options can only be given with a context's first append", field="context_id")
            if context.ended:
                raise InvalidParameter(f"context {context_id!r} has ended", field="context_id")
            context.received_chars += len(text)
            if context.received_chars > self.settings.max_text_chars:
                context.scope.cancel()
                raise TextTooLong(f"a context may receive at most {self.settings.max_text_chars} characters")
            for sentence in context.assembler.feed(text):
                context.sentences.send_nowait(sentence)
            return
        if context is None:
            raise InvalidParameter(f"no open context {context_id!r}", field="context_id")
        if set(data) - {"context_id"}:
            raise InvalidParameter(f"{action} takes only a context_id", field="context_id")
        held = context.assembler.flush()
        for sentence in held:
            context.sentences.send_nowait(sentence)
        if action == "flush" and not held and not context.ended:
            context.sentences.send_nowait(_KEEP_ALIVE)  # nothing to speak; the client is still there
        if action == "end":
            context.ended = True
            context.sentences.close()

    def _open_context(self, context_id: str, data: dict[str, Any]) -> _Context:
        if len(self._contexts) >= MAX_CONTEXTS:
            raise QueueFull(f"at most {MAX_CONTEXTS} contexts may be open on one socket")
        self.service.shutdown.check()
        options = {key: value for key, value in data.items() if key not in ("context_id", "text")}
        params = parse_json_params(ContextParams, {"text": "-", **options}, max_text_chars=self.settings.max_text_chars)
        # Bounded by the context's character limit, not by a message count.
        send, receive = trio.open_memory_channel[str](math.inf)
        job = self.service.job(params)
        context = _Context(
            context_id=context_id,
            job=job,
            choice=self.service.encoding(params, job),
            assembler=SentenceAssembler(max_chars=self.settings.max_sentence_chars),
            sentences=send,
        )
        self._contexts[context_id] = context
        assert self._nursery is not None
        self._nursery.start_soon(self._run_context, context, receive)
        return context

    async def _run_context(self, context: _Context, sentences: trio.MemoryReceiveChannel[str]) -> None:
        fmt = context.job.pool.audio_format
        base = {"context_id": context.context_id}
        place: Place | None = None
        try:
            with context.scope:
                place = await self._admitted(base)
                if place is None:
                    return
                await self._send_json({"type": "start", **base, "format": context.choice.describe(fmt)})
                output = EncodedOutput(fmt, context.choice)
                index = 0

                async def send_audio(data: bytes, metrics: StreamMetrics) -> None:
                    nonlocal index
                    for piece in split_chunks(data, 65536):
                        index += 1
                        chunk = base64.b64encode(piece).decode()
                        await self._send_json({"type": "audio", **base, "chunk": chunk, "index": index})
                        metrics.audio_sent(len(piece))

                with self.service.track_stream(context.job.pool):
                    async with trio.open_nursery() as nursery:
                        source = _until_idle(sentences, self.settings.context_idle_timeout)
                        receive, metrics = open_audio_stream(nursery, context.job, source)
                        async with receive:
                            async for item in receive:
                                if isinstance(item, StreamError):
                                    await self._send_json(
                                        {"type": "error", **base, "code": item.code, "message": item.message}
                                    )
                                    return
                                if isinstance(item, AudioChunk):
                                    await send_audio(await output.encode(item.pcm), metrics)
                                else:
                                    await self._send_json({"type": "timings", **base, **item.to_dict()})
                    await send_audio(await output.finish(), metrics)
                metrics.finish()
                self.service.stream_finished(metrics, "websocket")
                await self._send_json({"type": "metrics", **base, "data": metrics.to_dict()})
                await self._send_json({"type": "done", **base})
        finally:
            if place is not None:
                place.release()
            context.sentences.close()
            if self._contexts.get(context.context_id) is context:
                del self._contexts[context.context_id]
            self._ended_work()

    # -- generations -----------------------------------------------------
    async def _run_generations(self) -> None:
        async for generation in self._queue_receive:
            try:
                if generation.epoch != self._epoch:
                    continue
                with trio.CancelScope() as scope:
                    self._running, self._running_id = scope, generation.request_id
                    try:
                        await self._generate(generation)
                    finally:
                        self._running, self._running_id = None, None
            finally:
                self._generations -= 1
                self._ended_work()

    async def _admitted(self, ids: dict[str, str]) -> Place | None:
        """A stream place, or None after telling the client the server is overloaded or stopping."""
        try:
            return await self.service.admission.acquire()
        except (Overloaded, ShuttingDown) as error:
            await self._send_json({"type": "error", **ids, **error.to_dict()})
            return None

    async def _generate(self, generation: _Generation) -> None:
        place = await self._admitted({"request_id": generation.request_id})
        if place is None:
            return
        try:
            # Resolved again now: the engine may have been switched while this waited.
            job = self.service.job(generation.params)
            generation = attrs.evolve(generation, job=job, choice=self.service.encoding(generation.params, job))
        except ApiError as error:
            place.release()
            await self._send_json({"type": "error", "request_id": generation.request_id, **error.to_dict()})
            return
        try:
            await self._generate_admitted(generation)
        finally:
            place.release()

    async def _generate_admitted(self, generation: _Generation) -> None:
        fmt = generation.job.pool.audio_format
        params = generation.params
        request = {"request_id": generation.request_id}
        await self._send_json({"type": "start", **request, "format": generation.choice.describe(fmt)})
        failure: StreamError | None = None
        per_message_wav = generation.choice.output_format == "wav"
        output = EncodedOutput(fmt, generation.choice if not per_message_wav else _same_rate_pcm(generation.choice))
        with self.service.track_stream(generation.job.pool):
            async with trio.open_nursery() as nursery:
                receive, metrics = open_audio_stream(nursery, generation.job)
                async with receive:
                    async for item in receive:
                        if isinstance(item, StreamError):
                            failure = item
                            break
                        if isinstance(item, AudioChunk):
                            data = await output.encode(item.pcm)
                            for message in _audio_messages(data, fmt, generation.choice, params.chunk_size):
                                await self._send(message)
                                metrics.audio_sent(len(message))
                        else:
                            await self._send_json({"type": "timings", **request, **item.to_dict()})
            for message in _audio_messages(await output.finish(), fmt, generation.choice, params.chunk_size):
                await self._send(message)
                metrics.audio_sent(len(message))
        metrics.finish()
        self.service.stream_finished(metrics, "websocket")
        if failure is not None:
            await self._send_json({"type": "error", **request, "code": failure.code, "message": failure.message})
            return
        await self._send_json({"type": "metrics", **request, "data": metrics.to_dict()})
        await self._send_json({"type": "done", **request})

    # -- outgoing ---------------------------------------------------------
    async def _send_json(self, payload: dict[str, Any]) -> None:
        await self._send(json.dumps(payload, separators=(",", ":")))

    async def _send(self, data: str | bytes) -> None:
        await self._locked(self.ws.send, data)

    async def _locked(self, sending: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run one send under the lock, shielded (half a frame would corrupt the socket), within the send timeout."""
        async with self._send_lock:
            with trio.move_on_after(self.settings.send_timeout) as scope:
                scope.shield = True
                await sending(*args)
            if scope.cancelled_caught:
                raise ClientStalled("the client did not read for too long")


def _same_rate_pcm(choice: EncodingChoice) -> EncodingChoice:
    """Per-message WAV files are built from PCM at the chosen rate."""
    return EncodingChoice("pcm", choice.sample_rate)


def _audio_messages(data: bytes, fmt: AudioFormat, choice: EncodingChoice, chunk_size: int | None) -> list[bytes]:
    """Binary messages for encoded data: whole WAV files for ``wav``, stream pieces otherwise."""
    if not data:
        return []
    if choice.output_format != "wav":
        return [data] if chunk_size is None else list(split_chunks(data, chunk_size))
    target = attrs.evolve(fmt, sample_rate=choice.sample_rate)
    if chunk_size is None:
        return [wav_file(target, data)]
    room = frame_aligned(chunk_size - _WAV_HEADER_BYTES, target)
    return [wav_file(target, piece) for piece in split_chunks(data, room)]


async def _until_idle(sentences: trio.MemoryReceiveChannel[str], idle_seconds: float) -> AsyncIterator[str]:
    """Sentences of a context; ends it with :class:`ContextIdle` when nothing arrives for ``idle_seconds``.

    A ``flush`` with nothing held arrives as :data:`_KEEP_ALIVE` and only restarts the wait.
    """
    while True:
        with trio.move_on_after(idle_seconds) as waited:
            try:
                sentence = await sentences.receive()
            except trio.EndOfChannel:
                return
        if waited.cancelled_caught:
            raise ContextIdle(f"no text for {idle_seconds:g} s; send append, flush or end, or the context is ended")
        if sentence != _KEEP_ALIVE:
            yield sentence
